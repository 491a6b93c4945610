{#- heartbeat v1 owns the storage, the VIP and mfsmaster: haresources in the classic order. On the first deploy
    the preferred node gives back what storage.sls acquired before heartbeat starts; the other node joins only
    once the cluster serves, so the two never race for the storage. #}
{%- from tpldir ~ "/map.jinja" import mfsha with context %}
{%- from tpldir ~ "/libtofs.jinja" import files_switch with context %}
{%- set st = mfsha.storage %}
{%- set hb = mfsha.heartbeat %}
{%- set ha = mfsha.os.ha_dir %}
{%- set port = mfsha.master.config.MATOCL_LISTEN_PORT %}
{%- set bootstrap = salt["mfsha.bootstrap_needed"](mfsha) %}
{%- set running = salt["heartbeat.running"]() %}

mfsha-heartbeat-packages:
  pkg.installed:
    - pkgs: {{ mfsha.os.pkgs.heartbeat | json }}
    - install_recommends: False   # else ~100 packages, pacemaker among them

{#- shellfuncs writes a cluster message to the FIFO in pieces; two at once interleave and no node takes the
    resources (`NV failure (msgfromsteam)`). One printf is one write, below PIPE_BUF, so it is atomic. #}
mfsha-heartbeat-clustermsg-written-at-once:
  file.replace:
    - name: {{ ha }}/shellfuncs
    - pattern: '^\s*\(echo ">>>"; cat -; echo "<<<"\)\s*\|\s*cat - >> \$HA_FIFO\s*$'
    - repl: '	printf ">>>\\n%s\\n<<<\\n" "$(cat -)" >> $HA_FIFO  # mfsha: one write, no interleaving'
    - require:
      - pkg: mfsha-heartbeat-packages

{#- heartbeat's configuration, its two resource agents and their helpers:
    witness: the witness rule, shared by MFSGuard and DRBD's fence-peer handler (storage.sls);
    selffence: its holder's half, a holder cut off from everything lets go (ha.cf respawns it);
    MFSGuard: first resource of the group, refuses to take it while another host answers ARP for the VIP (partition)
      or no ping node answers;
    tickle: run by MFSMaster start, resets the dead holder's client connections to the VIP (see the script) #}
{%- for id, path, source, mode in [
      ("ha.cf", ha ~ "/ha.cf", "ha.cf.jinja", "0644"),
      ("authkeys", ha ~ "/authkeys", "authkeys.jinja", "0600"),
      ("haresources", ha ~ "/haresources", "haresources.jinja", "0644"),
      ("witness-helper", "/usr/local/sbin/mfsha-witness", "mfsha-witness.jinja", "0755"),
      ("selffence-helper", "/usr/local/sbin/mfsha-selffence", "mfsha-selffence.jinja", "0755"),
      ("guard-resource-agent", ha ~ "/resource.d/MFSGuard", "MFSGuard.sh.jinja", "0755"),
      ("mfsmaster-resource-agent", ha ~ "/resource.d/MFSMaster", "MFSMaster.sh.jinja", "0755"),
      ("tickle-helper", "/usr/local/sbin/mfsha-tickle", "mfsha-tickle.py", "0755")] %}
mfsha-heartbeat-{{ id }}:
  file.managed:
    - name: {{ path }}
    - source: {{ files_switch(mfsha, [source], lookup="mfsha-heartbeat-" ~ id) }}
{%- if source.endswith(".jinja") %}
    - template: jinja
    - context:
        mfsha: {{ mfsha | json }}
{%- endif %}
    - mode: "{{ mode }}"
{%- if id == "authkeys" %}
    - show_changes: False
{%- endif %}
    - require:
      - pkg: mfsha-heartbeat-packages
{%- endfor %}

{%- if bootstrap %}
mfsha-heartbeat-bootstrap-storage-unmounted:
  mount.unmounted:
    - name: {{ st.mountpoint }}
    - require:
      - sls: {{ tpldir }}.master
    - require_in:
      - service: mfsha-heartbeat-service
{%- if st.type == "drbd" %}

mfsha-heartbeat-bootstrap-drbd-demoted:
  drbd.demoted:
    - name: {{ st.drbd.resource }}
    - require:
      - mount: mfsha-heartbeat-bootstrap-storage-unmounted
    - require_in:
      - service: mfsha-heartbeat-service
{%- endif %}
{%- elif not running and mfsha.me.id != mfsha.preferred %}
mfsha-heartbeat-join-after-cluster-serves:
  mfsha.serving:
    - name: {{ mfsha.vip.address }}
    - port: {{ port }}
    - timeout: {{ hb.join_timeout }}
    - require_in:
      - service: mfsha-heartbeat-service
{%- endif %}

mfsha-heartbeat-service:
  service.running:
    - name: {{ mfsha.os.services.heartbeat }}
    - enable: True
    - reload: True   # re-reads its configuration; a restart would move the resources
    - require:
      - file: mfsha-heartbeat-clustermsg-written-at-once
      - file: mfsha-heartbeat-mfsmaster-resource-agent
      - file: mfsha-heartbeat-guard-resource-agent
      - file: mfsha-heartbeat-tickle-helper
      - file: mfsha-heartbeat-witness-helper
      - file: mfsha-heartbeat-selffence-helper
    - watch:
      - file: mfsha-heartbeat-ha.cf
      - file: mfsha-heartbeat-authkeys
      - file: mfsha-heartbeat-haresources

{%- if bootstrap %}
mfsha-heartbeat-cluster-serves:
  mfsha.serving:
    - name: {{ mfsha.vip.address }}
    - port: {{ port }}
    - timeout: {{ hb.join_timeout }}  # what the other node waits too; initdead alone is tight on slow hosts
    - require:
      - service: mfsha-heartbeat-service
{%- endif %}
