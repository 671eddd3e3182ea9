# An Ubuntu node as the clouds boot it, for the node tests (tests/nodes/harness.py): systemd as
# PID 1, cloud-init with the NoCloud datasource, sshd, on the release the clouds' images use.
# Built on the local noble base (scripts/base-image noble, debootstrap): no registry is needed.
ARG BASE_IMAGE=trackday-base:noble
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
# What an Ubuntu cloud image has installed. No systemd-timesyncd, snapd or motd-news: nothing on
# a node may reach past the test's own network.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      systemd systemd-sysv dbus cloud-init openssh-server sudo iproute2 apt-utils kmod \
      curl gnupg ca-certificates lsb-release locales
# What the node's user data installs at boot (docker.io, jq) waits in a local archive, the only
# source apt has: the boot installs them for real, with no traffic off the test network.
RUN mkdir -p /opt/trackday-archive && cd /opt/trackday-archive \
 && apt-get install -y -qq --download-only --no-install-recommends docker.io jq \
 && mv /var/cache/apt/archives/*.deb . \
 && apt-ftparchive packages . > Packages \
 && echo 'deb [trusted=yes] file:/opt/trackday-archive ./' > /etc/apt/sources.list \
 && rm -rf /etc/apt/sources.list.d/* /var/lib/apt/lists/*
# A fresh machine at first boot: no machine ID, no SSH host keys (cloud-init makes them), and
# cloud-init reads only the seed the harness copies in (/var/lib/cloud/seed/nocloud). The
# network is Docker's and the apt source the local archive (a cloud's image points at the
# cloud's own mirror): cloud-init leaves both alone.
RUN : > /etc/machine-id \
 && mkdir -p /var/lib/cloud/seed/nocloud \
 && rm -f /etc/ssh/ssh_host_* \
 && printf '%s\n' 'datasource_list: [NoCloud]' 'network: {config: disabled}' \
      'apt: {preserve_sources_list: true}' \
      > /etc/cloud/cloud.cfg.d/90-trackday-test.cfg
COPY node-init /usr/local/sbin/trackday-test-init
RUN chmod 0755 /usr/local/sbin/trackday-test-init
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/sbin/trackday-test-init"]
