{#- The mfsha beacon on a master node: health transitions go to the Salt master's reactor (mfsha/reactor.sls).
    Its config is a snapshot of the pillar so it keeps working with the Salt master down. `interval` counts minion
    loop ticks (loop_interval), so check_interval seconds are converted. #}
{%- from tpldir ~ "/map.jinja" import mfsha with context %}
{%- set f = mfsha.failover %}
{%- set loop = salt["config.get"]("loop_interval", 1) | float %}
{%- set ticks = [1, (f.check_interval / loop) | round(0, "ceil") | int] | max %}

{#- The beacon module must be in the minion's running beacon loader before beacon.present validates it; a sync
    signals the minion asynchronously, so wait (bounded) until the minion lists it. #}
mfsha-monitoring-beacon-synced:
  saltutil.sync_beacons:
    - refresh: True

mfsha-monitoring-beacon-loaded:
  loop.until:
    - name: beacons.list_available
    - m_kwargs:
        return_yaml: False
    - condition: "'mfsha' in m_ret"
    - period: 1
    - timeout: 30
    - require:
      - saltutil: mfsha-monitoring-beacon-synced

mfsha-monitoring-beacon:
  beacon.present:
    - name: mfsha
    - save: True
    - interval: {{ ticks }}
{#- node_state's arguments, built where the runner and the module build them (_utils/mfsha_node.py) #}
{%- for key, value in salt["mfsha.node_args"](mfsha) | dictsort %}
    - {{ key }}: {{ value | json }}
{%- endfor %}
    - debounce: {{ f.debounce }}
    - repeat: {{ f.cooldown }}
    - service_after: {{ f.serve_timeout }}
    - probe_timeout: 0.5
    - reserve_mb: {{ mfsha.storage.reserve_mb }}
    - require:
      - loop: mfsha-monitoring-beacon-loaded
