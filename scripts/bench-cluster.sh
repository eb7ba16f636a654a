#!/bin/bash
# Cluster benchmark: redis + 2 nodes vs a single embedded node, same load generator.
cd "$(dirname "$0")/.."
RP=26399
redis-server --port $RP --bind 127.0.0.1 --save '' --appendonly no --daemonize no > /tmp/cb-redis.log 2>&1 &
RPID=$!
sleep 0.5
redis-cli -p $RP flushall > /dev/null
node bin/skein.js start -p 18841 --host 127.0.0.1 --data-dir /tmp/cb-a --node-id ba --redis redis://127.0.0.1:$RP --log-level warn > /tmp/cb-a.log 2>&1 &
APID=$!
node bin/skein.js start -p 18842 --host 127.0.0.1 --data-dir /tmp/cb-b --node-id bb --redis redis://127.0.0.1:$RP --log-level warn > /tmp/cb-b.log 2>&1 &
BPID=$!
rm -rf /tmp/cb-single; node bin/skein.js start -p 18843 --host 127.0.0.1 --data-dir /tmp/cb-single --log-level warn > /tmp/cb-s.log 2>&1 &
SPID=$!
sleep 2
echo "== single node (embedded store)"
node dist/bench/bench.js --port 18843 --qos 1 --seconds 4
node dist/bench/bench.js --port 18843 --qos 1 --seconds 4 --persistent
node dist/bench/bench.js --port 18843 --qos 1 --seconds 4 --rate 2000 --publishers 2
echo "== cluster, publishers and subscriber on the same node"
node dist/bench/bench.js --port 18841 --qos 1 --seconds 4
echo "== cluster, cross-node"
node dist/bench/bench.js --port 18841 --sub-port 18842 --qos 1 --seconds 4
redis-cli -p $RP info commandstats | grep -E "cmdstat_(evalsha|xadd|xread|set|get)" > /tmp/cb-stats-before.txt
node dist/bench/bench.js --port 18841 --sub-port 18842 --qos 1 --seconds 4 --persistent
redis-cli -p $RP info commandstats | grep -E "cmdstat_(evalsha|xadd|xread)" > /tmp/cb-stats-after.txt
node dist/bench/bench.js --port 18841 --sub-port 18842 --qos 1 --seconds 4 --rate 2000 --publishers 2
kill $APID $BPID $SPID; sleep 1; kill $RPID
cat /tmp/cb-stats-before.txt /tmp/cb-stats-after.txt
