// Node BullMQ on code-runner's queue, both ways:
//   node interop.mjs <redis-url> <prefix> <queue> [<job id added by code-runner>]
// Adds a job from Node, waits until code-runner completed it, and reads the
// job code-runner's API added; prints one JSON line of what Node saw.
import { Queue, QueueEvents } from 'bullmq';
import IORedis from 'ioredis';
import { randomUUID } from 'node:crypto';

const [url, prefix, queueName, rustJobId] = process.argv.slice(2);
// BullMQ 6 takes ready-made clients in ESM; QueueEvents blocks on its own.
const client = () => new IORedis(url, { maxRetriesPerRequest: null });

const queue = new Queue(queueName, { connection: client(), prefix });
const events = new QueueEvents(queueName, { connection: client(), prefix });
await events.waitUntilReady();

const job = await queue.add(
  'run',
  { language: 'python', code: "print('from node')" },
  { jobId: randomUUID() },
);
await job.waitUntilFinished(events, 60_000);
const done = await queue.getJob(job.id);

const out = {
  nodeJob: {
    id: job.id,
    returnvalueType: typeof done.returnvalue,
    returnvalue: done.returnvalue,
  },
};
if (rustJobId) {
  const rustJob = await queue.getJob(rustJobId);
  out.rustJob = {
    data: rustJob?.data,
    state: await queue.getJobState(rustJobId),
    returnvalueType: typeof rustJob?.returnvalue,
    returnvalue: rustJob?.returnvalue,
  };
}
console.log(JSON.stringify(out));
await events.close();
await queue.close();
process.exit(0);
