{#- mfsha failover: one beacon event -> salt-run mfsha.recover, which re-checks both nodes through salt.function
    calls (mfsha.node_state) and never trusts the event. THE RULE (README, _runners/mfsha.py):
    act only for a master node of a cluster in the Salt master's pillar, with failover enabled, no maintenance,
    heartbeat not moving the resources and exactly one node holding them. If that node's mfsmaster answers the
    protocol, do nothing. Otherwise restart mfsmaster in place (-a) if the node holds storage and VIP, its heartbeat
    runs and fewer than restart_budget restarts happened in the last cooldown seconds; else (or when the restart does
    not serve within serve_timeout) hand every resource to the peer through heartbeat (hb_standby) if no move
    happened in the last cooldown seconds, both heartbeats run and the peer's DRBD disk may be promoted; else refuse
    and say why. Fires mfsha/failover/<result> with the timeline. #}
{%- set event = pillar.get("mfsha_event", {}) %}
mfsha-recover:
  salt.runner:
    - name: mfsha.recover
    - minion: {{ event.get("data", {}).get("id", "") | json }}
    - event: {{ event | json }}
