{#- Chunkservers, metaloggers and clients: each talks to the cluster's VIP only, so a failover needs no change here. #}
{%- from tpldir ~ "/map.jinja" import mfsha with context %}
{%- from tpldir ~ "/libtofs.jinja" import files_switch with context %}
{%- set conf = mfsha.os.mfs_conf_dir %}
{%- set mcfg = mfsha.master.config %}

{%- if "chunkserver" in mfsha.roles %}
mfsha-chunkserver-packages:
  pkg.installed:
    - pkgs: {{ mfsha.os.pkgs.chunkserver | json }}

{%- for hdd in mfsha.chunkservers.hdds %}
mfsha-chunkserver-hdd-{{ hdd }}:
  file.directory:
    - name: {{ hdd }}
    - user: {{ mcfg.WORKING_USER }}
    - group: {{ mcfg.WORKING_GROUP }}
    - makedirs: True
    - require_in:
      - service: mfsha-chunkserver-service
{%- endfor %}

{%- for file in ["mfschunkserver.cfg", "mfshdd.cfg"] %}
mfsha-chunkserver-{{ file }}:
  file.managed:
    - name: {{ conf }}/{{ file }}
    - source: {{ files_switch(mfsha, [file ~ ".jinja"], lookup="mfsha-chunkserver-" ~ file) }}
    - template: jinja
    - context:
        mfsha: {{ mfsha | json }}
    - makedirs: True
    - require:
      - pkg: mfsha-chunkserver-packages
    - watch_in:
      - service: mfsha-chunkserver-service
{%- endfor %}

mfsha-chunkserver-service:
  service.running:
    - name: {{ mfsha.os.services.chunkserver }}
    - enable: True
{%- endif %}

{%- if "metalogger" in mfsha.roles %}
mfsha-metalogger-packages:
  pkg.installed:
    - pkgs: {{ mfsha.os.pkgs.metalogger | json }}

mfsha-metalogger-mfsmetalogger.cfg:
  file.managed:
    - name: {{ conf }}/mfsmetalogger.cfg
    - source: {{ files_switch(mfsha, ["mfsmetalogger.cfg.jinja"], lookup="mfsha-metalogger-mfsmetalogger.cfg") }}
    - template: jinja
    - context:
        mfsha: {{ mfsha | json }}
    - makedirs: True
    - require:
      - pkg: mfsha-metalogger-packages

mfsha-metalogger-service:
  service.running:
    - name: {{ mfsha.os.services.metalogger }}
    - enable: True
    - watch:
      - file: mfsha-metalogger-mfsmetalogger.cfg
{%- endif %}

{%- if "client" in mfsha.roles %}
{%- set cl = mfsha.clients %}
{%- set opts = ["mfsmaster=" ~ mfsha.vip.address, "mfsport=" ~ mcfg.MATOCL_LISTEN_PORT] + cl.options %}
mfsha-client-packages:
  pkg.installed:
    - pkgs: {{ mfsha.os.pkgs.client | json }}

mfsha-client-mountpoint-directory:
  file.directory:
    - name: {{ cl.mountpoint }}
    - makedirs: True
    - unless: mountpoint -q {{ cl.mountpoint }}

mfsha-client-fstab-entry:
  mount.fstab_present:
    - name: mfsmount
    - fs_file: {{ cl.mountpoint }}
    - fs_vfstype: fuse
    - fs_mntops: {{ (["defaults", "_netdev"] + opts) | join(",") }}
    - mount_by: null
    - mount: False   # the entry is for boot; mounting waits for the cluster below

{#- on a first deploy the masters start alongside: mount once the cluster serves, not before #}
mfsha-client-cluster-serves:
  mfsha.serving:
    - name: {{ mfsha.vip.address }}
    - port: {{ mcfg.MATOCL_LISTEN_PORT }}
    - timeout: {{ mfsha.heartbeat.join_timeout }}
    - unless: mountpoint -q {{ cl.mountpoint }}

mfsha-client-mounted:
  cmd.run:
    - name: mfsmount {{ cl.mountpoint }} -o {{ opts | join(",") }}
    - unless: mountpoint -q {{ cl.mountpoint }}
    - require:
      - pkg: mfsha-client-packages
      - file: mfsha-client-mountpoint-directory
      - mfsha: mfsha-client-cluster-serves
{%- endif %}
