{#- Computed includes: each minion gets the concerns of its roles in its cluster (see pillar.example). #}
{%- from tpldir ~ "/map.jinja" import mfsha with context %}
include:
{%- if "master" in mfsha.roles %}
  - .storage
  - .master
  - .heartbeat
{%- if mfsha.failover.enabled %}
  - .monitoring
{%- endif %}
{%- endif %}
{%- if mfsha.roles | reject("equalto", "master") | list %}
  - .clients
{%- endif %}
{%- if not mfsha.roles %}
  - .none
{%- endif %}
