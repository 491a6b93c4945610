{#- Thin on purpose: hand the beacon event to the orchestration, which looks at the cluster itself.
    Matches salt/beacon/*/mfsha/*/down (mfsha/reactor.sls). Nothing in an event is trusted: any minion can send one
    with any tag, `id` and payload (event.send with preload). So the state ID is a constant and the event goes on
    only as ONE JSON-encoded string (twice encoded: the event as JSON, that text as a JSON string, which is a
    double-quoted ASCII YAML scalar whatever it holds); the runner decodes it as a hint of which cluster to look at. #}
mfsha-recover:
  runner.state.orchestrate:
    - args:
      - mods: mfsha.orch.recover
      - pillar:
          mfsha_event: {{ {"tag": tag, "data": data} | json | json }}
