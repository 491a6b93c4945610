"""The fault catalogue: every fault by name (FAULTS: lab, ctx -> rto_s), what it sets up before its clock starts
(PREPARE), how long client I/O may take to come back (LIMITS, else LIMIT_S), and the order `make faults` runs them
in (MATRIX). run_fault (mfshalab.faults.run) runs one."""
from mfshalab.faults import forged, network, rogue, security, service, storage

FAULTS = {
    "kill9": service.f_kill9,
    "sigstop": service.f_sigstop,
    "port_blocked": service.f_port_blocked,
    "host_death": service.f_host_death,
    "heartbeat_only_host_death": service.f_host_death,  # with loop_off first (PREPARE)
    "partition": network.f_partition,
    "heal_loses_heartbeat": network.f_heal_loses_heartbeat,
    "isolated_standby": network.f_isolated_standby,
    "isolated_active": network.f_isolated_active,
    "salt_master_down": service.f_salt_master_down,
    "disk_full": storage.f_disk_full,
    "changelog_hole": storage.f_changelog_hole,
    "during_failover": service.f_during_failover,
    "cycles": service.f_cycles,
    "forged_event": forged.f_forged_event,
    "rogue_metalogger": rogue.f_rogue_metalogger,
    "symlink_in_data_path": security.f_symlink_in_data_path,
}
# set up before the fault's clock starts
PREPARE = {"heartbeat_only_host_death": service.loop_off, "rogue_metalogger": rogue.prepare_rogue}
LIMIT_S = 90
# per-fault limit (s) for client I/O to come back; salt_master_down: hold + Salt restart + beacon repeat (cooldown)
# port_blocked: the passive node's service_after (30 s) + a move; during_failover: heartbeat's failed start, its own
# retry (runner settle_s: 57 s in the lab) and the loop's takeover (a heartbeat restart: initdead 12 s).
# symlink_in_data_path: the link at changelog_ml.0.mfs makes the loop's restarts refuse (their disk check will not
# read it) until its fill replaces the link: two failed restarts first (96 s in the lab), then the fill and a
# restart that serves.
LIMITS = {"salt_master_down": 180, "port_blocked": 90, "changelog_hole": 60, "disk_full": 60, "during_failover": 150,
          "cycles": 60, "forged_event": 90, "rogue_metalogger": 90, "symlink_in_data_path": 150}
# `make faults`: the faults that may need the operator's metalogger recovery run last
MATRIX = ("kill9", "sigstop", "host_death", "during_failover", "partition", "heal_loses_heartbeat", "isolated_standby",
          "isolated_active", "salt_master_down", "port_blocked", "cycles", "disk_full", "changelog_hole",
          "forged_event", "symlink_in_data_path", "rogue_metalogger")
