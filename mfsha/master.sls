{#- The metadata server: packaged autostart off (heartbeat owns mfsmaster), and on the node that has the storage
    mounted, mfsmaster.cfg, mfsexports.cfg and the metadata. A config change reloads only a running master. #}
{%- from tpldir ~ "/map.jinja" import mfsha with context %}
{%- from tpldir ~ "/libtofs.jinja" import files_switch with context %}
{%- set st = mfsha.storage %}
{%- set cfg = st.mountpoint ~ "/mfsmaster.cfg" %}
{%- set owner = mfsha.master.config.WORKING_USER %}
{%- set group = mfsha.master.config.WORKING_GROUP %}
{%- set bootstrap = salt["mfsha.bootstrap_needed"](mfsha) %}

mfsha-master-packages:
  pkg.installed:
    - pkgs: {{ mfsha.os.pkgs.master | json }}

{#- A packaged single master may still run (migration): stopping it writes its metadata out cleanly. #}
mfsha-master-packaged-service-disabled:
  service.dead:
    - name: {{ mfsha.os.services.master }}
    - enable: False
    - require:
      - pkg: mfsha-master-packages

{%- if bootstrap or salt["mount.is_mounted"](st.mountpoint) %}
mfsha-master-data-path-owned:
  file.directory:
    - name: {{ st.mountpoint }}
    - user: {{ owner }}
    - group: {{ group }}
    - mode: "0755"
{%- if bootstrap %}
    - require:
      - mount: mfsha-storage-mounted-for-bootstrap
{%- endif %}

{#- The storage is the mfs user's directory: mfsha.storage_file never follows a link planted there (file.managed
    does, and reads its target for the diff also with follow_symlinks False). #}
mfsha-master-config-file:
  mfsha.storage_file:
    - name: {{ cfg }}
    - source: {{ files_switch(mfsha, ["mfsmaster.cfg.jinja"], lookup="mfsha-master-config-file") }}
    - context:
        mfsha: {{ mfsha | json }}
    - mode: "0644"
    - require:
      - file: mfsha-master-data-path-owned

mfsha-master-exports-file:
  mfsha.storage_file:
    - name: {{ mfsha.master.config.EXPORTS_FILENAME }}
    - source: {{ files_switch(mfsha, ["mfsexports.cfg.jinja"], lookup="mfsha-master-exports-file") }}
    - context:
        mfsha: {{ mfsha | json }}
    - mode: "0644"
    - require:
      - file: mfsha-master-data-path-owned

mfsha-master-metadata-present:
  mfsha.metadata_seeded:
    - name: {{ st.mountpoint }}
    - legacy_path: {{ mfsha.os.mfs_data_dir }}
    - empty: {{ mfsha.os.empty_metadata }}
    - user: {{ owner }}
    - group: {{ group }}
    - require:
      - file: mfsha-master-data-path-owned
      - service: mfsha-master-packaged-service-disabled

mfsha-master-reloaded-on-config-change:
  cmd.run:
    - name: mfsmaster -c {{ cfg }} reload
    # only a master that runs here; a stopped one reads the new files when heartbeat starts it
    - onlyif: mfsmaster -c {{ cfg }} test
    - onchanges:
      - mfsha: mfsha-master-config-file
      - mfsha: mfsha-master-exports-file
{%- endif %}
