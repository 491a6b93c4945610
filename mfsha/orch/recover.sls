{#- mfsha failover: one beacon event -> salt-run mfsha.recover, which looks at both nodes itself (mfsha.node_state)
    and takes the event as a hint only (which cluster to look at); what it does is THE RULE, written down once in
    _utils/mfsha_rule.py (docs/design.md explains it). The event stays one JSON-encoded string (reactor/health.sls). #}
mfsha-recover:
  salt.runner:
    - name: mfsha.recover
    - event: {{ pillar.get("mfsha_event", "") | string | json }}
