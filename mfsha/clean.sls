{#- mfsha.clean: takes mfsha off this host. Never part of `mfsha` (init.sls does not include it): applied by name,
    `salt <minion> state.apply mfsha.clean`; `state.apply mfsha` puts everything back.

    A master node that holds the group (serves the VIP, has the storage mounted or is DRBD Primary) is refused with
    the reason and nothing changes: its peer must take the group first (salt-run mfsha.switchover <cluster>).
    A standby master node loses the mfsha beacon (and its record), heartbeat (stopped, disabled, its config,
    authkeys, haresources and the mfsha resource agents), the mfsha helpers, the DRBD resource (taken down, its .res
    and handlers removed) and the empty storage mountpoint. A chunkserver, metalogger or client target: its daemon
    stopped and disabled, its config removed; the client unmounted, its fstab entry and empty mountpoint removed.

    Never touched: the storage's data and the DRBD metadata on the backing disk (the node can rejoin, resyncing only
    what changed), chunk data, the metalogger's changelogs, the split-brain marker /var/lib/mfsha (operators'
    evidence), the packages (the host may use them otherwise; remove them with the package manager), the packaged
    master's autostart (kept off: enabled, it could start a second master), and heartbeat's shellfuncs fix (a fix
    of the package's own file). #}
{%- from tpldir ~ "/map.jinja" import mfsha with context %}
{%- set conf = mfsha.os.mfs_conf_dir %}
{%- set svc = mfsha.os.services %}

{%- if "master" in mfsha.roles %}
{%- set st = mfsha.storage %}
{%- set ha = mfsha.os.ha_dir %}
{%- set vip = mfsha.vip.address %}
{#- What this node holds: one check, run at render (a holder gets the refusal and nothing else) and again right
    before anything changes (the node may have taken the group since). ip failing counts as holding. #}
{%- set check -%}
held=""
addrs=$(ip -o -4 addr show) || { echo "cannot tell whether it serves the VIP (ip addr failed)"; exit 1; }
case "$addrs" in *" inet {{ vip }}/"*) held="$held, serves the VIP {{ vip }}";; esac
mountpoint -q {{ st.mountpoint }} && held="$held, has the storage mounted on {{ st.mountpoint }}"
{%- if st.type == "drbd" %}
drbdadm role {{ st.drbd.resource }} 2>/dev/null | grep -q '^Primary' && held="$held, is DRBD Primary of {{ st.drbd.resource }}"
{%- endif %}
if [ -n "$held" ]; then echo "${held#, }"; exit 1; fi
echo 'changed=no comment="holds neither the VIP nor the storage: a standby"'
{%- endset %}
{%- set look = salt["cmd.run_all"](check, python_shell=True, ignore_retcode=True) %}

{%- if look.retcode != 0 %}
mfsha-clean-refused-on-the-holder:
  test.fail_without_changes:
    - name: mfsha.clean
    - comment: {{ ("mfsha.clean refused on " ~ mfsha.me.id ~ ": it " ~ look.stdout.strip() ~ " (cluster "
                   ~ mfsha.cluster ~ "); nothing was changed. Hand the group to " ~ mfsha.peer.id
                   ~ " first (salt-run mfsha.switchover " ~ mfsha.cluster ~ "), then apply mfsha.clean here.") | json }}
{%- else %}
mfsha-clean-still-standby:
  cmd.run:
    - name: {{ check | json }}
    - stateful: True

{#- first the beacon: a standby whose heartbeat is gone would otherwise be reported to the loop #}
mfsha-clean-beacon-absent:
  beacon.absent:
    - name: mfsha
    - save: True
    - require:
      - cmd: mfsha-clean-still-standby

mfsha-clean-beacon-record-absent:
  file.absent:
    - name: {{ salt["config.get"]("cachedir") }}/mfsha
    - require:
      - beacon: mfsha-clean-beacon-absent

{#- sig: the process, not the init script, says whether it runs: without ha.cf heartbeat's init script answers
    every action, status too, with exit 0 ("not configured"), so a second clean would see it running #}
mfsha-clean-heartbeat-stopped:
  service.dead:
    - name: {{ svc.heartbeat }}
    - enable: False
    - sig: "heartbeat: master control process"
    - require:
      - beacon: mfsha-clean-beacon-absent

{%- for path in [ha ~ "/ha.cf", ha ~ "/authkeys", ha ~ "/haresources", ha ~ "/resource.d/MFSGuard",
                 ha ~ "/resource.d/MFSMaster", "/usr/local/sbin/mfsha-witness", "/usr/local/sbin/mfsha-selffence",
                 "/usr/local/sbin/mfsha-tickle"] %}
mfsha-clean-heartbeat-{{ path }}:
  file.absent:
    - name: {{ path }}
    - require:
      - service: mfsha-clean-heartbeat-stopped
{%- endfor %}

{%- if st.type == "drbd" %}
{%- set res = st.drbd.resource %}
{#- down, not wiped: the metadata stays on the backing disk, so `mfsha` brings the node back with a resync of what
    changed. A minor exists while the resource is up (DRBD 8.4 and 9 alike). #}
mfsha-clean-drbd-{{ res }}-down:
  cmd.run:
    - name: drbdadm down {{ res }}
    - onlyif: test -e /sys/block/drbd{{ st.drbd.minor }}
    - require:
      - service: mfsha-clean-heartbeat-stopped

{%- for path in ["/etc/drbd.d/" ~ res ~ ".res", "/usr/local/sbin/mfsha-drbd-split-brain",
                 "/usr/local/sbin/mfsha-fence-peer"] %}
mfsha-clean-drbd-{{ path }}:
  file.absent:
    - name: {{ path }}
    - require:
      - cmd: mfsha-clean-drbd-{{ res }}-down
{%- endfor %}
{%- endif %}

{#- rmdir: only ever an empty directory, never what is in it #}
mfsha-clean-storage-mountpoint:
  cmd.run:
    - name: rmdir {{ st.mountpoint }}
    - onlyif: test -d {{ st.mountpoint }} && ! mountpoint -q {{ st.mountpoint }} && test -z "$(ls -A {{ st.mountpoint }})"
    - require:
      - service: mfsha-clean-heartbeat-stopped
{%- endif %}
{%- endif %}

{%- if "chunkserver" in mfsha.roles %}
mfsha-clean-chunkserver-service:
  service.dead:
    - name: {{ svc.chunkserver }}
    - enable: False

{#- the hdds (chunk data) stay #}
{%- for file in ["mfschunkserver.cfg", "mfshdd.cfg"] %}
mfsha-clean-chunkserver-{{ file }}:
  file.absent:
    - name: {{ conf }}/{{ file }}
    - require:
      - service: mfsha-clean-chunkserver-service
{%- endfor %}
{%- endif %}

{%- if "metalogger" in mfsha.roles %}
mfsha-clean-metalogger-service:
  service.dead:
    - name: {{ svc.metalogger }}
    - enable: False

{#- its changelogs (the metalogger fill's source) stay #}
mfsha-clean-metalogger-mfsmetalogger.cfg:
  file.absent:
    - name: {{ conf }}/mfsmetalogger.cfg
    - require:
      - service: mfsha-clean-metalogger-service
{%- endif %}

{%- if "client" in mfsha.roles %}
{%- set mp = mfsha.clients.mountpoint %}
mfsha-clean-client-unmounted:
  mount.unmounted:
    - name: {{ mp }}

mfsha-clean-client-fstab-entry:
  mount.fstab_absent:
    - name: mfsmount
    - fs_file: {{ mp }}

mfsha-clean-client-mountpoint:
  cmd.run:
    - name: rmdir {{ mp }}
    - onlyif: test -d {{ mp }} && ! mountpoint -q {{ mp }} && test -z "$(ls -A {{ mp }})"
    - require:
      - mount: mfsha-clean-client-unmounted
{%- endif %}

{%- if not mfsha.roles %}
mfsha-clean-nothing-here:
  test.nop:
    - name: {{ grains.id }} has no mfsha role (not a node nor a target of any cluster)
{%- endif %}
