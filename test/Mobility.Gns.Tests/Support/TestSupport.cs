using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Mobility.Gns.Service;
using Mobility.Gns.Storage;
using Mobility.Gns.Udp;
using Mobility.Gns.Watch;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Tests.Support;

internal static class Timeouts
{
    /// <summary>Every await in these tests is bounded, so a hang fails the test instead of stalling the run.</summary>
    public static readonly TimeSpan Test = TimeSpan.FromSeconds(30);

    public static Task<T> Within<T>(this ValueTask<T> task) => task.AsTask().WaitAsync(Test);

    public static Task<T> Within<T>(this Task<T> task) => task.WaitAsync(Test);

    public static Task Within(this Task task) => task.WaitAsync(Test);

    public static Task Within(this ValueTask task) => task.AsTask().WaitAsync(Test);
}

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
        var length = await Processor.ProcessAsync(datagram, reply, source ?? Client).Within();
        return reply[..length];
    }

    public async ValueTask DisposeAsync()
    {
        Hub.Dispose();
        await Store.DisposeAsync();
    }
}

/// <summary>Keeps every log entry so a test can check what was logged and at which level.</summary>
internal sealed class RecordingLogger<T> : ILogger<T>
{
    public ConcurrentQueue<(LogLevel Level, EventId Id, string Message)> Entries { get; } = new();

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        => Entries.Enqueue((logLevel, eventId, formatter(state, exception)));
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

/// <summary>A logger provider that keeps every entry of every category.</summary>
internal sealed class RecordingLoggerProvider : ILoggerProvider
{
    public ConcurrentQueue<(string Category, LogLevel Level, string Message)> Entries { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(RecordingLoggerProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => provider.Entries.Enqueue((category, logLevel, formatter(state, exception) + (exception is null ? "" : " " + exception)));
    }
}
