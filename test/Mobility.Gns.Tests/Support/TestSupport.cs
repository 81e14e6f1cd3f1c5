using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Mobility.Gns.Service;
using Mobility.Gns.Udp;
using Mobility.Gns.Watch;

namespace Mobility.Gns.Tests.Support;

internal static class Records
{
    public static Locator At(string address, ushort port = 4000, LocatorKind kind = LocatorKind.Host)
        => new(IPAddress.Parse(address), port, kind);

    public static GnsRecord Make(HostKey key, ulong version, string? name = null, uint ttl = 30, DateTimeOffset? issuedAt = null,
        params string[] addresses)
        => GnsRecord.Create(key, version, (addresses.Length == 0 ? ["192.0.2.1"] : addresses).Select(a => At(a)), ttl, name, issuedAt);

    /// <summary>A record of the largest size: longest name and the most IPv6 locators.</summary>
    public static GnsRecord Largest(HostKey key, ulong version)
        => GnsRecord.Create(key, version,
            Enumerable.Range(1, GnsRecord.MaxLocators).Select(i => new Locator(IPAddress.Parse($"2001:db8::{i:x}"), (ushort)(1000 + i))),
            30, new string('a', HostName.MaxLength - 2) + "zz", DateTimeOffset.UtcNow);
}

/// <summary>A GNS core over an in-memory store, on virtual time.</summary>
internal sealed class GnsFixture : IAsyncDisposable
{
    public GnsFixture(IGnsStore? store = null, Action<GnsServerOptions>? configure = null)
    {
        Options = new GnsServerOptions();
        configure?.Invoke(Options);
        Store = store ?? new InMemoryGnsStore();
        Time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        Feed = new LocalRecordChangeFeed();
        var options = Microsoft.Extensions.Options.Options.Create(Options);
        Service = new GnsService(Store, Feed, options, Time, ServiceLog);
        Processor = new GnsRequestProcessor(Service, ProcessorLog);
        Hub = new WatchHub(Feed, Service, options, NullLogger<WatchHub>.Instance);
    }

    public GnsServerOptions Options { get; }

    public IGnsStore Store { get; }

    public FakeTimeProvider Time { get; }

    public LocalRecordChangeFeed Feed { get; }

    public GnsService Service { get; }

    public GnsRequestProcessor Processor { get; }

    public WatchHub Hub { get; }

    public RecordingLogger<GnsService> ServiceLog { get; } = new();

    public RecordingLogger<GnsRequestProcessor> ProcessorLog { get; } = new();

    public static IPEndPoint Client { get; } = new(IPAddress.Parse("198.51.100.7"), 40123);

    /// <summary>Processes one request datagram; returns the reply bytes (empty when dropped).</summary>
    public async Task<byte[]> SendAsync(byte[] datagram, IPEndPoint? source = null)
    {
        var reply = new byte[Protocol.Gns.GnsDatagram.MaxDatagramSize];
        var length = await Processor.ProcessAsync(datagram, reply, source ?? Client).WithTimeout();
        return reply[..length];
    }

    public async ValueTask DisposeAsync()
    {
        Hub.Dispose();
        await Store.DisposeAsync();
    }
}

/// <summary>A store whose puts wait until the test releases them; everything else goes to an in-memory store.</summary>
internal sealed class GatedStore : IGnsStore
{
    private readonly InMemoryGnsStore _inner = new();

    public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource PutStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async ValueTask<StoreResult> PutAsync(GnsRecord record, bool requireExisting, CancellationToken cancellationToken = default)
    {
        PutStarted.TrySetResult();
        await Gate.Task.WaitAsync(cancellationToken);
        return await _inner.PutAsync(record, requireExisting, cancellationToken);
    }

    public ValueTask<StoreResult> RemoveAsync(HostGuid guid, ulong version, CancellationToken cancellationToken = default)
        => _inner.RemoveAsync(guid, version, cancellationToken);

    public ValueTask<GnsRecord?> GetAsync(HostGuid guid, CancellationToken cancellationToken = default) => _inner.GetAsync(guid, cancellationToken);

    public ValueTask<GnsRecord?> GetByNameAsync(string name, CancellationToken cancellationToken = default)
        => _inner.GetByNameAsync(name, cancellationToken);

    public ValueTask<ReverseResult> ReverseAsync(IPAddress address, int limit, CancellationToken cancellationToken = default)
        => _inner.ReverseAsync(address, limit, cancellationToken);

    public ValueTask<ulong?> GetVersionAsync(HostGuid guid, CancellationToken cancellationToken = default)
        => _inner.GetVersionAsync(guid, cancellationToken);

    public ValueTask DisposeAsync() => _inner.DisposeAsync();
}
