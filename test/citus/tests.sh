#!/bin/bash
echo hello; psql -XAtc "select * from citus_get_active_worker_nodes() order by 2"
psql -XAt -c "select attribution.distribute()"
