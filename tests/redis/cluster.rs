//! A Redis Cluster, through a slot migration.

use super::*;

/// Each node's id and the slots it serves, from `CLUSTER NODES`.
async fn cluster_node_ids(port: u16) -> Vec<(String, u16)> {
    let mut conn = connection(port).await;
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn)
        .await
        .unwrap();
    nodes
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = fields[1]
                .split('@')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .unwrap();
            (fields[0].to_string(), port)
        })
        .collect()
}

/// The port of the node serving `slot`.
async fn slot_owner(port: u16, slot: u16) -> u16 {
    let mut conn = connection(port).await;
    let slots: Vec<(u16, u16, Vec<redis::Value>)> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await
        .unwrap();
    for (first, last, primary) in slots {
        if (first..=last).contains(&slot)
            && let Some(redis::Value::Int(port)) = primary.get(1)
        {
            return *port as u16;
        }
    }
    panic!("no node serves slot {slot}");
}

/// Three primaries in a Redis Cluster; jobs run; the slot of the queue's
/// keys (one hash tag, one slot) is migrated to another primary while
/// submissions go on; jobs run on after it.
#[tokio::test]
async fn the_service_runs_on_a_redis_cluster_through_a_slot_migration() {
    let base = scratch("cluster");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut nodes = Vec::new();
    for port in &ports {
        let dir = base.join(port.to_string());
        let mut args = server_args(*port, &dir, None);
        args.extend(
            ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"].map(String::from),
        );
        // The cluster bus listens too, by default on port + 10000: a port
        // `free_port` may hand to another test of this binary, whose server
        // then fails to bind while its readiness check reaches this bus. So
        // the bus gets a port of its own from the same allocator.
        args.extend(["--cluster-port".to_string(), free_port().to_string()]);
        nodes.push(RedisServer::with_args(&dir, *port, &args));
    }
    let mut create = Command::new("redis-cli");
    create.arg("--cluster").arg("create");
    for port in &ports {
        create.arg(format!("127.0.0.1:{port}"));
    }
    let created = create.arg("--cluster-yes").output().unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stdout)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    for port in &ports {
        loop {
            let mut conn = connection(*port).await;
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut conn)
                .await
                .unwrap();
            if info.contains("cluster_state:ok") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not form: {info}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let url = format!(
        "redis+cluster://{}",
        ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let service = std::sync::Arc::new(
        TestService::start_with(|c| {
            c.redis_url = Some(url.clone());
            c.wall_time_limit_ms = 30_000;
        })
        .await,
    );
    let done = service
        .run_v1(json!({ "language": "python", "code": "print('cluster')" }))
        .await;
    assert_eq!(done["result"]["stdout"], "cluster\n", "{done}");
    // A cancellation crosses the cluster's pub/sub.
    cancel_a_running_job(&service).await;

    // The queue's slot, and the primary serving it.
    let mut conn = connection(ports[0]).await;
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(TEST_PREFIX)
        .query_async(&mut conn)
        .await
        .unwrap();
    let source = slot_owner(ports[0], slot).await;
    let target = *ports.iter().find(|p| **p != source).unwrap();
    let ids = cluster_node_ids(ports[0]).await;
    let id_of = |port: u16| ids.iter().find(|(_, p)| *p == port).unwrap().0.clone();
    let (source_id, target_id) = (id_of(source), id_of(target));

    // Submissions go on while the slot moves.
    let load = SteadyLoad::start(service.clone(), Duration::from_millis(50));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut on_source = connection(source).await;
    let mut on_target = connection(target).await;
    let () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("IMPORTING")
        .arg(&source_id)
        .query_async(&mut on_target)
        .await
        .unwrap();
    let () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("MIGRATING")
        .arg(&target_id)
        .query_async(&mut on_source)
        .await
        .unwrap();
    let mut moved = 0;
    loop {
        let keys: Vec<String> = redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(slot)
            .arg(100)
            .query_async(&mut on_source)
            .await
            .unwrap();
        if keys.is_empty() {
            break;
        }
        moved += keys.len();
        let () = redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(target)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(&keys)
            .query_async(&mut on_source)
            .await
            .unwrap();
    }
    for port in &ports {
        let mut conn = connection(*port).await;
        let () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("NODE")
            .arg(&target_id)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    assert_eq!(slot_owner(ports[0], slot).await, target);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (accepted, refused, _) = load.stop().await;
    eprintln!(
        "cluster: slot {slot} moved from :{source} to :{target} ({moved} keys) under load; \
         {} submissions acknowledged, {refused} answered 503",
        accepted.len()
    );
    all_completed(&service, &accepted, Duration::from_secs(120)).await;
    // And after it: a job, the dashboard's overview.
    let done = service
        .run_v1(json!({ "language": "python", "code": "print('moved')" }))
        .await;
    assert_eq!(done["result"]["stdout"], "moved\n", "{done}");
    let (status, body) = service.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    std::sync::Arc::into_inner(service).unwrap().stop().await;
    drop(nodes);
    let _ = std::fs::remove_dir_all(&base);
}
