-- Take a scattered fraction of the 4-digit room ids, as rooms created
-- earlier would: room:<id> with created_at and a 48 h TTL for ARGV[1] of
-- the 10 000 ids (7919 is prime to 10 000, so (i * 7919) % 10000 visits
-- every id once). Used by bench/run.sh (apifill) and bench/icount.sh.
for i = 0, 9999 do
  if (i * 7919) % 10000 < tonumber(ARGV[1]) then
    local k = string.format('room:%04d', i)
    redis.call('HSET', k, 'created_at', '1')
    redis.call('EXPIRE', k, 172800)
  end
end
return 0
