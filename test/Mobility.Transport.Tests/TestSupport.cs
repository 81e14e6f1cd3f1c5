namespace Mobility.Transport.Tests;

/// <summary>An <see cref="IPeerLocator"/> whose answers and pushes the test controls.</summary>
internal sealed class TestLocator : IPeerLocator
{
    private readonly Dictionary<HostGuid, IReadOnlyList<IPEndPoint>> _records = [];
    private readonly object _gate = new();

    public TimeSpan Latency { get; set; }

    /// <summary>The clock <see cref="Latency"/> runs on.</summary>
    public TimeProvider Time { get; set; } = TimeProvider.System;

    public int Lookups;

    /// <summary>Called with the lookup's number (1 for the first) before it reads the record: a test changes the record between lookups.</summary>
    public Action<int>? BeforeAnswer { get; set; }

    public event EventHandler<PeerEndpointsChangedEventArgs>? EndpointsChanged;

    /// <summary>Answers of <see cref="LocateForConnectAsync"/> from a record the locator "keeps current" (a watched one): no lookup counted.</summary>
    private readonly Dictionary<HostGuid, IReadOnlyList<IPEndPoint>> _kept = [];

    /// <summary>Connects that started from a kept record (<see cref="Keep"/>).</summary>
    public int KeptAnswers;

    /// <summary>A kept (cached, watched) record: <see cref="LocateForConnectAsync"/> answers it without a lookup.</summary>
    public void Keep(HostGuid guid, params IPEndPoint[] endpoints)
    {
        lock (_gate)
        {
            _kept[guid] = endpoints;
        }
    }

    /// <summary>The record is no longer kept current (its watch is down): <see cref="LocateForConnectAsync"/> looks it up.</summary>
    public void Forget(HostGuid guid)
    {
        lock (_gate)
        {
            _kept.Remove(guid);
        }
    }

    public async ValueTask<LocatedEndpoints> LocateForConnectAsync(HostGuid guid, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_kept.TryGetValue(guid, out var kept))
            {
                Interlocked.Increment(ref KeptAnswers);
                return new LocatedEndpoints(kept, FromCache: true);
            }
        }

        return new LocatedEndpoints(await LocateAsync(guid, cancellationToken), FromCache: false);
    }

    public void Set(HostGuid guid, params IPEndPoint[] endpoints)
    {
        lock (_gate)
        {
            _records[guid] = endpoints;
        }
    }

    /// <summary>Updates the record and pushes the change to subscribers (a GNS watch).</summary>
    public void Push(HostGuid guid, params IPEndPoint[] endpoints)
    {
        Set(guid, endpoints);
        EndpointsChanged?.Invoke(this, new PeerEndpointsChangedEventArgs(guid, endpoints));
    }

    private readonly Dictionary<HostGuid, int> _lookupsOf = [];

    /// <summary>Lookups of <paramref name="guid"/>'s record so far.</summary>
    public int LookupsOf(HostGuid guid)
    {
        lock (_gate)
        {
            return _lookupsOf.GetValueOrDefault(guid);
        }
    }

    public async ValueTask<IReadOnlyList<IPEndPoint>> LocateAsync(HostGuid guid, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            _lookupsOf[guid] = _lookupsOf.GetValueOrDefault(guid) + 1;
        }

        var lookup = Interlocked.Increment(ref Lookups);
        BeforeAnswer?.Invoke(lookup);
        if (Latency > TimeSpan.Zero)
        {
            await Task.Delay(Latency, Time, cancellationToken);
        }

        lock (_gate)
        {
            return _records.TryGetValue(guid, out var endpoints) ? endpoints : [];
        }
    }
}

/// <summary>Deterministic pseudo-random content, generated in blocks, hashed as it goes.</summary>
internal sealed class PatternSource(int seed)
{
    private readonly Random _random = new(seed);

    public void Fill(Span<byte> buffer) => _random.NextBytes(buffer);

    public static async Task<byte[]> SendAsync(Stream stream, long length, int seed, Func<long, Task>? onProgress = null, CancellationToken ct = default)
    {
        var source = new PatternSource(seed);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[64 * 1024];
        long sent = 0;
        while (sent < length)
        {
            var n = (int)Math.Min(buffer.Length, length - sent);
            source.Fill(buffer.AsSpan(0, n));
            hash.AppendData(buffer, 0, n);
            await stream.WriteAsync(buffer.AsMemory(0, n), ct);
            sent += n;
            if (onProgress is not null)
            {
                await onProgress(sent);
            }
        }

        return hash.GetHashAndReset();
    }

    /// <summary>Reads until end of stream; returns (bytes, SHA-256).</summary>
    public static async Task<(long Length, byte[] Hash)> ReceiveAsync(Stream stream, CancellationToken ct = default)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[64 * 1024];
        long total = 0;
        while (true)
        {
            var n = await stream.ReadAsync(buffer, ct);
            if (n == 0)
            {
                return (total, hash.GetHashAndReset());
            }

            hash.AppendData(buffer, 0, n);
            total += n;
        }
    }

    public static async Task ReadExactlyAsync(Stream stream, byte[] buffer, CancellationToken ct = default)
    {
        await stream.ReadExactlyAsync(buffer, ct);
    }
}

internal static class Keys
{
    public static readonly HostKey Server = HostKey.Generate();
    public static readonly HostKey Client = HostKey.Generate();
    public static readonly HostKey Other = HostKey.Generate();
}
