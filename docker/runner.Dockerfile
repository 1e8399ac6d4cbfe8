# Every runner image: the shared Debian base (docker/build-images.sh makes
# it with debootstrap), one recipe's packages from Debian, and the monitor.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG RECIPE

COPY images/${RECIPE}/ /tmp/recipe/
RUN set -eu; \
    packages="$(sed 's/#.*//' /tmp/recipe/packages | xargs)"; \
    # Manual pages are not installed, but some packages' scripts (the
    # JDK's) need their folders.
    mkdir -p /usr/share/man/man1; \
    if [ -n "$packages" ]; then \
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q $packages; \
    fi; \
    if [ -f /tmp/recipe/setup ]; then sh -eu /tmp/recipe/setup; fi; \
    rm -rf /tmp/recipe /var/cache/apt/archives/*.deb /var/cache/apt/*.bin /var/log/apt \
        /var/log/dpkg.log

# PID 1 of every job container (built from monitor/ by build-images.sh);
# last, so a new monitor rebuilds only this layer.
COPY .build/code-runner-monitor /usr/local/bin/code-runner-monitor

# Never run user code as root; the service also sets the user explicitly.
USER 65534:65534
WORKDIR /tmp
ENTRYPOINT ["/usr/local/bin/code-runner-monitor"]
