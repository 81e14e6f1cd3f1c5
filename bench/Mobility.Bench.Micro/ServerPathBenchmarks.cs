using System.Net;
using System.Net.Sockets;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Mobility.Gns;
using Mobility.Gns.Service;
using Mobility.Gns.Storage;
using Mobility.Gns.Udp;
using Mobility.Gns.Watch;
using Mobility.Net.RateLimiting;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Identity;

namespace Mobility.Bench.Micro;

/// <summary>
/// The GNS server's work for one lookup datagram, without sockets: what GnsUdpServer does between
/// receive and send (source endpoint, rate limiter, GnsRequestProcessor with each store). Compared with
/// the load test's lookups per CPU-second, it tells how much of a lookup is our code and how much is
/// the socket and the kernel. Baseline: the in-memory store.
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
public class ServerPathBenchmarks
{
    private readonly byte[] _reply = new byte[GnsDatagram.MaxDatagramSize];
    private readonly IPEndPoint _source = new(IPAddress.Loopback, 40000);
    private readonly IPEndPoint _template = new(IPAddress.Any, 0);
    private SocketAddress _socketAddress = null!;
    private byte[] _lookup = null!;
    private byte[] _lookupUnknown = null!;
    private GnsRequestProcessor _memory = null!;
    private GnsRequestProcessor _sqliteCached = null!;
    private GnsRequestProcessor _sqliteUncached = null!;
    private SourceRateLimiter _limiter = null!;
    private readonly List<IAsyncDisposable> _stores = [];
    private readonly List<string> _folders = [];

    [GlobalSetup]
    public void Setup()
    {
        var options = Options.Create(new GnsServerOptions { RequestsPerSecond = 1e9, Burst = 1_000_000 });
        using var key = Fixtures.Key();
        var record = Fixtures.Record(key);
        _lookup = Fixtures.LookupDatagram(key.Guid);
        using (var other = HostKey.FromSeed(new byte[32]))
        {
            _lookupUnknown = Fixtures.LookupDatagram(other.Guid);
        }
        _socketAddress = _source.Serialize();
        _limiter = new SourceRateLimiter(options.Value.ToRateLimits(), TimeProvider.System);

        GnsRequestProcessor Processor(IGnsStore store)
        {
            _stores.Add(store);
            var service = new GnsService(store, new LocalRecordChangeFeed(), options, TimeProvider.System, NullLogger<GnsService>.Instance);
            var stored = service.PutAsync(record, requireExisting: false).AsTask().GetAwaiter().GetResult();
            if (!stored.IsSuccess)
            {
                throw new InvalidOperationException($"The fixture record was refused: {stored.Message}");
            }

            return new GnsRequestProcessor(service, NullLogger<GnsRequestProcessor>.Instance);
        }

        SqliteGnsStore Sqlite(int cacheCapacity)
        {
            var folder = Path.Combine(Path.GetTempPath(), "gns-micro-" + Guid.NewGuid().ToString("N"));
            _folders.Add(folder);
            return new SqliteGnsStore(new SqliteGnsStoreOptions { DataDirectory = folder, CacheCapacity = cacheCapacity });
        }

        _memory = Processor(new InMemoryGnsStore());
        _sqliteCached = Processor(Sqlite(65_536));
        _sqliteUncached = Processor(Sqlite(0));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var store in _stores)
        {
            store.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        foreach (var folder in _folders)
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Benchmark(Baseline = true, Description = "ProcessAsync lookup, in-memory store")]
    public ValueTask<int> LookupMemory() => _memory.ProcessAsync(_lookup, _reply, _source);

    [Benchmark(Description = "ProcessAsync lookup, SQLite store, cache hit")]
    public ValueTask<int> LookupSqliteCached() => _sqliteCached.ProcessAsync(_lookup, _reply, _source);

    [Benchmark(Description = "ProcessAsync lookup, SQLite store, cache miss")]
    public ValueTask<int> LookupSqliteUncached() => _sqliteUncached.ProcessAsync(_lookup, _reply, _source);

    [Benchmark(Description = "ProcessAsync lookup of an unknown GUID, in-memory store")]
    public ValueTask<int> LookupUnknownMemory() => _memory.ProcessAsync(_lookupUnknown, _reply, _source);

    [Benchmark(Description = "ProcessAsync lookup of an unknown GUID, SQLite store")]
    public ValueTask<int> LookupUnknownSqlite() => _sqliteCached.ProcessAsync(_lookupUnknown, _reply, _source);

    [Benchmark(Description = "SourceRateLimiter.Check")]
    public RateLimitDecision RateLimit() => _limiter.Check(_source.Address);

    [Benchmark(Description = "IPEndPoint from SocketAddress (per datagram)")]
    public EndPoint SourceEndPoint() => _template.Create(_socketAddress);

    [Benchmark(Description = "GnsRequestProcessor.Classify")]
    public GnsDatagramKind Classify() => GnsRequestProcessor.Classify(_lookup);
}
