{#- mfsha failover: one beacon event -> salt-run mfsha.recover, which re-checks both nodes (mfsha.node_state) and
    never trusts the event; what it does is THE RULE, written down once in _runners/mfsha.py and README "The rule". #}
{%- set event = pillar.get("mfsha_event", {}) %}
mfsha-recover:
  salt.runner:
    - name: mfsha.recover
    - minion: {{ event.get("data", {}).get("id", "") | json }}
    - event: {{ event | json }}
