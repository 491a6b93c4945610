{#- Storage under the master's DATA_PATH: the DRBD resource (or the shared disk), made once, never remade.
    On the very first deploy the preferred node acquires it to create the filesystem and seed the metadata
    (master.sls); heartbeat.sls hands it back to heartbeat, its only owner from then on. #}
{%- from tpldir ~ "/map.jinja" import mfsha with context %}
{%- from tpldir ~ "/libtofs.jinja" import files_switch with context %}
{%- set st = mfsha.storage %}
{%- set bootstrap = salt["mfsha.bootstrap_needed"](mfsha) %}

mfsha-storage-mountpoint-directory:
  file.directory:
    - name: {{ st.mountpoint }}
    - makedirs: True

{%- if st.type == "drbd" %}
{%- set d = st.drbd %}
mfsha-storage-drbd-packages:
  pkg.installed:
    - pkgs: {{ mfsha.os.pkgs.drbd | json }}

{#- DRBD's handlers; fence-peer promotes a disconnected node only under the witness rule (see the script) #}
{%- for id, name, source in [("split-brain", "mfsha-drbd-split-brain", "drbd-split-brain.sh"),
                             ("fence-peer", "mfsha-fence-peer", "mfsha-fence-peer.sh")] %}
mfsha-storage-drbd-{{ id }}-handler:
  file.managed:
    - name: /usr/local/sbin/{{ name }}
    - source: {{ files_switch(mfsha, [source], lookup="mfsha-storage-drbd-" ~ id ~ "-handler") }}
    - mode: "0755"
{%- endfor %}

mfsha-storage-drbd-resource-{{ d.resource }}:
  file.managed:
    - name: /etc/drbd.d/{{ d.resource }}.res
    - source: {{ files_switch(mfsha, ["drbd.res.jinja"], lookup="mfsha-storage-drbd-resource") }}
    - template: jinja
    - context:
        mfsha: {{ mfsha | json }}
        drbd_major: {{ salt["mfsha.drbd_major"]() }}
    - mode: "0600"        # holds the shared secret
    - show_changes: False
    - makedirs: True
    # the real parser must accept it before it replaces the live file (salt appends the temp file; no shell: the
    # dump it prints on success is not shown in the state output)
    - check_cmd: drbdadm dump {{ d.resource }} -c
    - require:
      - pkg: mfsha-storage-drbd-packages
      - file: mfsha-storage-drbd-fence-peer-handler

mfsha-storage-drbd-{{ d.resource }}-metadata-created:
  drbd.initialized:
    - name: {{ d.resource }}
    - require:
      - file: mfsha-storage-drbd-resource-{{ d.resource }}

mfsha-storage-drbd-{{ d.resource }}-up:
  drbd.up:
    - name: {{ d.resource }}
    - require:
      - drbd: mfsha-storage-drbd-{{ d.resource }}-metadata-created

mfsha-storage-drbd-{{ d.resource }}-adjusted:
  drbd.adjusted:
    - name: {{ d.resource }}
    - onchanges:
      - file: mfsha-storage-drbd-resource-{{ d.resource }}
    - require:
      - drbd: mfsha-storage-drbd-{{ d.resource }}-up
{%- endif %}

{%- if bootstrap %}
{%- if st.type == "drbd" %}
{#- A fresh pair (both sides Inconsistent, connected) is synced from here; a pair with data is never forced. #}
mfsha-storage-drbd-{{ st.drbd.resource }}-initial-sync-source:
  drbd.initial_sync_source:
    - name: {{ st.drbd.resource }}
    - timeout: {{ mfsha.heartbeat.join_timeout }}
    - require:
      - drbd: mfsha-storage-drbd-{{ st.drbd.resource }}-up

mfsha-storage-drbd-{{ st.drbd.resource }}-promoted-for-bootstrap:
  drbd.promoted:
    - name: {{ st.drbd.resource }}
    - require:
      - drbd: mfsha-storage-drbd-{{ st.drbd.resource }}-initial-sync-source
    - require_in:
      - cmd: mfsha-storage-filesystem-created
{%- endif %}

mfsha-storage-filesystem-created:
  cmd.run:
    - name: mkfs.{{ st.fstype }} -q {{ st.device }}
    # any signature (filesystem, partition table, LVM...) means data: never format it
    - unless: blkid -p {{ st.device }}

mfsha-storage-mounted-for-bootstrap:
  mount.mounted:
    - name: {{ st.mountpoint }}
    - device: {{ st.device }}
    - fstype: {{ st.fstype }}
    - mkmnt: True
    - persist: False
    - require:
      - cmd: mfsha-storage-filesystem-created
      - file: mfsha-storage-mountpoint-directory
{%- endif %}
