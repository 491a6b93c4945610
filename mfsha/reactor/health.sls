{#- Thin on purpose: hand the beacon event to the orchestration, which re-checks everything itself.
    Matches salt/beacon/*/mfsha/*/down (mfsha/reactor.sls). data.id is the sender as authenticated by the master. #}
mfsha-recover-{{ data.get("id", "unknown") }}:
  runner.state.orchestrate:
    - args:
      - mods: mfsha.orch.recover
      - pillar:
          mfsha_event:
            tag: {{ tag | json }}
            data: {{ data | json }}
