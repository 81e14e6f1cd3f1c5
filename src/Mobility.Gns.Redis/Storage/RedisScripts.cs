namespace Mobility.Gns.Redis.Storage;

/// <summary>
/// The Lua scripts of <see cref="RedisGnsStore"/>. Each touches one key (KEYS[1]), or for an address's
/// claims two keys with the same hash tag (KEYS[1], KEYS[2]), so it runs atomically in one slot of a
/// cluster as on a single server. StackExchange.Redis sends them
/// by SHA (EVALSHA) once loaded.
/// </summary>
internal static class RedisScripts
{
    /// <summary>a &gt; b for two 16-digit hexadecimal versions, compared as two exact 32-bit halves.</summary>
    private const string Greater = """
        local function gt(a, b)
          local ah, bh = tonumber(string.sub(a, 1, 8), 16), tonumber(string.sub(b, 1, 8), 16)
          if ah ~= bh then return ah > bh end
          return tonumber(string.sub(a, 9, 16), 16) > tonumber(string.sub(b, 9, 16), 16)
        end

        """;

    /// <summary>Current time in ms on the key's node.</summary>
    private const string Now = """
        local function now()
          local t = redis.call('TIME')
          return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        end

        """;

    /// <summary>
    /// Put. KEYS[1] record hash; ARGV: version, requireExisting ("1"/"0"), encoded, name ("" for none).
    /// The version and existence rules of IGnsStore (NotFound before Stale; tombstones count) are
    /// checked and the record written in one step, so two GNS processes can never both store one version.
    /// Returns {status, stored version, name, removed, encoded}: on "stored" the previous state (for
    /// index and name clean-up), otherwise the current state ("" when absent).
    /// </summary>
    public const string Put = Greater + """
        local cur = redis.call('HMGET', KEYS[1], 'v', 'r', 'n', 'e')
        local v, r, n, e = cur[1], cur[2], cur[3] or '', cur[4] or ''
        local live = v and r == '0'
        if ARGV[2] == '1' and not live then return {'notfound', v or '', n, r or '', ''} end
        if v and not gt(ARGV[1], v) then return {'stale', v, n, r, e} end
        redis.call('HSET', KEYS[1], 'v', ARGV[1], 'r', '0', 'n', ARGV[4], 'e', ARGV[3])
        return {'stored', v or '', n, r or '', e}
        """;

    /// <summary>
    /// Remove. KEYS[1] record hash; ARGV: version. Unknown GUID: NotFound; version not higher: Stale;
    /// already a tombstone: NotFound. Otherwise leaves a tombstone (version only) and returns the removed
    /// record's name and encoding for clean-up.
    /// </summary>
    public const string Remove = Greater + """
        local cur = redis.call('HMGET', KEYS[1], 'v', 'r', 'n', 'e')
        local v, r = cur[1], cur[2]
        if not v then return {'notfound', '', '', '', ''} end
        if not gt(ARGV[1], v) then return {'stale', v, '', r, ''} end
        if r ~= '0' then return {'notfound', v, '', r, ''} end
        redis.call('HSET', KEYS[1], 'v', ARGV[1], 'r', '1')
        redis.call('HDEL', KEYS[1], 'n', 'e')
        return {'stored', v, cur[3] or '', r, cur[4] or ''}
        """;

    /// <summary>
    /// Claim a name (first come, first served). KEYS[1] name key; ARGV: guid, version, lease ms. Free:
    /// taken. Already the GUID's: its version is raised to ARGV version if higher (never lowered, so a
    /// slower claim of an older version cannot shrink a newer one). Another GUID's: returns
    /// {"held", value, expired} and changes nothing; the caller decides whether that claim is dead.
    /// </summary>
    public const string Claim = Greater + Now + """
        local t = now()
        local value = ARGV[1] .. '|' .. ARGV[2] .. '|' .. string.format('%d', t + tonumber(ARGV[3]))
        local cur = redis.call('GET', KEYS[1])
        if not cur then
          redis.call('SET', KEYS[1], value)
          return {'ok', value, '0'}
        end
        local owner, ver, exp = string.match(cur, '^(%x+)|(%x+)|(%d+)$')
        if owner == ARGV[1] and string.len(ver) == 16 then
          if gt(ARGV[2], ver) then redis.call('SET', KEYS[1], value) end
          return {'ok', cur, '0'}
        end
        local expired = '0'
        if exp and tonumber(exp) <= t then expired = '1' end
        return {'held', cur, expired}
        """;

    /// <summary>
    /// Take over a dead claim. KEYS[1] name key; ARGV: the exact claim value judged dead, guid, version,
    /// lease ms. Succeeds (1) only if the claim is still exactly that value: any change in between (the
    /// owner re-claimed, someone else took it) makes it fail (0) and the caller looks again.
    /// </summary>
    public const string Steal = Now + """
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        redis.call('SET', KEYS[1], ARGV[2] .. '|' .. ARGV[3] .. '|' .. string.format('%d', now() + tonumber(ARGV[4])))
        return 1
        """;

    /// <summary>
    /// Release a name. KEYS[1] name key; ARGV: guid, version, mode. Deletes the claim only if the GUID
    /// still holds it, with a claim version equal to ("eq") or not above ("le") ARGV version: a claim
    /// raised by a newer update of the same GUID is never released by an older one.
    /// </summary>
    public const string Release = Greater + """
        local cur = redis.call('GET', KEYS[1])
        if not cur then return 0 end
        local owner, ver = string.match(cur, '^(%x+)|(%x+)|')
        if owner ~= ARGV[1] or not ver or string.len(ver) ~= 16 then return 0 end
        if ARGV[3] == 'eq' then
          if ver ~= ARGV[2] then return 0 end
        elseif gt(ver, ARGV[2]) then
          return 0
        end
        redis.call('DEL', KEYS[1])
        return 1
        """;

    /// <summary>
    /// Drops the expired claims of KEYS[1] (scores in [-now, now]) and their versions in KEYS[2], in chunks
    /// (Lua's unpack has a stack limit; a set is bounded by the claim limits plus stale entries).
    /// </summary>
    private const string Purge = """
        local function purge(now)
          local gone = redis.call('ZRANGEBYSCORE', KEYS[1], -now, now)
          for i = 1, #gone, 500 do
            local chunk = {unpack(gone, i, math.min(i + 499, #gone))}
            redis.call('ZREM', KEYS[1], unpack(chunk))
            redis.call('HDEL', KEYS[2], unpack(chunk))
          end
        end

        """;

    /// <summary>
    /// Index one address claim (ClaimRules.Index for one address). KEYS[1] the address's claims set,
    /// scored -expiry for an attested claim and +expiry for an unattested one (so both kinds expire and
    /// the expired ones are exactly the scores in [-now, now]); KEYS[2] the address's claim versions (hash:
    /// GUID to the record version that last wrote its claim; same slot); ARGV: guid, attested now ("1"/"0"),
    /// now (ms), expiry (ms), max attested, max unattested, record version. Returns "newer" (a newer
    /// version of the GUID already wrote its claim here: nothing changed), "attested", "kept" (unattested
    /// incumbent refreshed), "added" (new unattested claim) or "full" (not indexed).
    /// </summary>
    public const string IndexClaim = Greater + Purge + """
        local g, now, exp = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4])
        local held = redis.call('HGET', KEYS[2], g)
        if held and gt(held, ARGV[7]) then return 'newer' end
        local s = redis.call('ZSCORE', KEYS[1], g)
        local sc = s and tonumber(s)
        local was_att = sc and sc < 0 and -sc > now
        local incumbent = sc and (was_att or sc > now)
        if ARGV[2] == '1' or was_att then
          if not was_att then
            purge(now)
            if redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. string.format('%.0f', -now)) >= tonumber(ARGV[5]) then
              redis.call('ZREM', KEYS[1], g)
              redis.call('HDEL', KEYS[2], g)
              return 'full'
            end
          end
          redis.call('ZADD', KEYS[1], -exp, g)
          redis.call('HSET', KEYS[2], g, ARGV[7])
          return 'attested'
        end
        if incumbent then
          redis.call('ZADD', KEYS[1], exp, g)
          redis.call('HSET', KEYS[2], g, ARGV[7])
          return 'kept'
        end
        purge(now)
        if redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%.0f', now), '+inf') >= tonumber(ARGV[6]) then return 'full' end
        redis.call('ZADD', KEYS[1], exp, g)
        redis.call('HSET', KEYS[2], g, ARGV[7])
        return 'added'
        """;

    /// <summary>
    /// Withdraw a claim. KEYS[1] the address's claims set, KEYS[2] its claim versions; ARGV: guid, version.
    /// Removes the GUID's claim (and its version) unless a version above ARGV version wrote it: the caller
    /// knows that the GUID's record at ARGV version does not carry the address, and a newer update that
    /// does may have indexed it meanwhile (the record and the address live in different slots). Returns 1
    /// when removed, 0 when kept.
    /// </summary>
    public const string RemoveClaim = Greater + """
        local held = redis.call('HGET', KEYS[2], ARGV[1])
        if held and gt(held, ARGV[2]) then return 0 end
        redis.call('ZREM', KEYS[1], ARGV[1])
        redis.call('HDEL', KEYS[2], ARGV[1])
        return 1
        """;

    /// <summary>
    /// Count a new unattested claim against its source. KEYS[1] the source's set; ARGV: member, now (ms),
    /// expiry (ms), max per source. Purges expired members first. Returns 1 when counted, 0 when the
    /// source is full.
    /// </summary>
    public const string CountSourceClaim = """
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
        if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
          redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
          return 1
        end
        if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
        redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
        return 1
        """;

    /// <summary>
    /// KEYS[1] an address's claims set, KEYS[2] its claim versions; ARGV: guid, score. Removes the claim (and
    /// its version) only if its score is still that one.
    /// </summary>
    public const string RemoveClaimIfScore = """
        local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
        if s and tonumber(s) == tonumber(ARGV[2]) then
          redis.call('ZREM', KEYS[1], ARGV[1])
          redis.call('HDEL', KEYS[2], ARGV[1])
          return 1
        end
        return 0
        """;
}
