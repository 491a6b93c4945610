{#- Apply on the Salt master's own minion: installs the reactor config of the failover loop. The master reads it at
    start (restart it once); `salt-run saltutil.sync_all` puts the mfsha runner and _utils on the master.
    The directory is the master's include dir: `mfsha_reactor_dir` (pillar or minion config), default /etc/salt/master.d. #}
{%- set master_d = salt["config.get"]("mfsha_reactor_dir", "/etc/salt/master.d") %}
mfsha-reactor-config:
  file.managed:
    - name: {{ master_d }}/mfsha-reactor.conf
    - makedirs: True
    - mode: "0644"
    - contents: |
        # Managed by Salt (mfsha): beacon health events -> orchestration (mfsha/orch/recover.sls)
        reactor:
          - 'salt/beacon/*/mfsha/*/down':
            - salt://mfsha/reactor/health.sls
