{#- A minion the pillar gives no role: nothing to do, said plainly rather than as an empty highstate. #}
mfsha-no-role-for-this-minion:
  test.nop:
    - name: {{ grains.id }} has no mfsha role (not a node nor a target of any cluster)
