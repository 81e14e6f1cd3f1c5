using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Mobility.Gns.Client;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.Tests.Fakes;

/// <summary>
/// A small in-memory GNS for in-process tests: verifies records, refuses stale versions, keeps a
/// reverse index and pushes watch events. Its clients share it, as clients of one real GNS do.
/// </summary>
public sealed class FakeGns
{
    private readonly Lock _gate = new();
    private readonly Dictionary<HostGuid, GnsRecord> _records = [];
    private readonly List<(HashSet<HostGuid> Guids, Channel<GnsWatchEvent> Events)> _watchers = [];

    public bool Unavailable { get; set; }

    public IGnsClient CreateClient(IPEndPoint? observed = null) => new Client(this, _ => observed);

    /// <summary>A client whose registrations report the reflexive address <paramref name="observe"/> gives for each record stored.</summary>
    public IGnsClient CreateClient(Func<GnsRecord, IPEndPoint?> observe) => new Client(this, observe);

    public GnsRecord? Get(HostGuid guid)
    {
        lock (_gate)
        {
            return _records.GetValueOrDefault(guid);
        }
    }

    /// <summary>Stores a record as the GNS would (any key may claim any address: that is why claims are challenged).</summary>
    public ulong Put(GnsRecord record)
    {
        if (Unavailable)
        {
            throw new GnsException(GnsErrorCode.Unavailable, "The fake GNS is down.");
        }

        if (!record.Verify())
        {
            throw new GnsException(GnsErrorCode.BadSignature, "Bad signature.");
        }

        (HashSet<HostGuid>, Channel<GnsWatchEvent>)[] watchers;
        lock (_gate)
        {
            if (_records.TryGetValue(record.Guid, out var existing) && existing.Version >= record.Version)
            {
                throw new GnsException(GnsErrorCode.StaleVersion, $"Version {record.Version} is not above {existing.Version}.");
            }

            _records[record.Guid] = record;
            watchers = [.. _watchers];
        }

        foreach (var (guids, events) in watchers)
        {
            if (guids.Contains(record.Guid))
            {
                events.Writer.TryWrite(new GnsWatchEvent(record.Guid, record, record.Version));
            }
        }

        return record.Version;
    }

    private IReadOnlyList<HostGuid> Reverse(IPAddress address)
    {
        var normalized = Locator.Normalize(address);
        lock (_gate)
        {
            return [.. _records.Values.Where(r => r.HasAddress(normalized)).Select(r => r.Guid).Order()];
        }
    }

    private sealed class Client(FakeGns gns, Func<GnsRecord, IPEndPoint?> observe) : IGnsClient
    {
        public Task<GnsUpdateResult> RegisterAsync(GnsRecord record, CancellationToken cancellationToken = default)
            => Task.FromResult(new GnsUpdateResult(gns.Put(record), observe(record)));

        public Task<GnsUpdateResult> UpdateAsync(GnsRecord record, CancellationToken cancellationToken = default)
        {
            if (gns.Get(record.Guid) is null)
            {
                throw new GnsException(GnsErrorCode.NotFound, "No record.");
            }

            return RegisterAsync(record, cancellationToken);
        }

        public Task<GnsRecord?> LookupAsync(HostGuid guid, CancellationToken cancellationToken = default)
            => gns.Unavailable ? throw new GnsException(GnsErrorCode.Unavailable, "down") : Task.FromResult(gns.Get(guid));

        public Task<GnsRecord?> LookupNameAsync(string name, CancellationToken cancellationToken = default)
        {
            lock (gns._gate)
            {
                return Task.FromResult(gns._records.Values.FirstOrDefault(r => r.Name == name.ToLowerInvariant()));
            }
        }

        public Task<IReadOnlyList<HostGuid>> ReverseAsync(IPAddress address, CancellationToken cancellationToken = default)
            => Task.FromResult(gns.Reverse(address));

        public Task<ulong> RemoveAsync(GnsRemoval removal, CancellationToken cancellationToken = default)
            => throw new NotSupportedException("The fake GNS does not remove.");

        public async IAsyncEnumerable<GnsWatchEvent> WatchAsync(IEnumerable<HostGuid> guids, [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            var set = guids.ToHashSet();
            var events = Channel.CreateUnbounded<GnsWatchEvent>();
            lock (gns._gate)
            {
                gns._watchers.Add((set, events));
                foreach (var guid in set)
                {
                    var current = gns._records.GetValueOrDefault(guid);
                    events.Writer.TryWrite(new GnsWatchEvent(guid, current, current?.Version ?? 0));
                }
            }

            try
            {
                await foreach (var e in events.Reader.ReadAllAsync(cancellationToken))
                {
                    yield return e;
                }
            }
            finally
            {
                lock (gns._gate)
                {
                    gns._watchers.RemoveAll(w => w.Events == events);
                }
            }
        }

        public void Invalidate(HostGuid guid)
        {
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
