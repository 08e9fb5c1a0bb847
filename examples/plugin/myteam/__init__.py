"""My team's additions to opsloop (load them with ``OPSLOOP_PLUGINS=myteam.ops``)."""
