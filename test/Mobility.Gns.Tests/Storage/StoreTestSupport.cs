using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Tests.Storage;

internal static class StoreTestSupport
{
    /// <summary>Every await in these tests is bounded, so a hang fails the test instead of stalling the run.</summary>
    public static readonly TimeSpan TestTimeout = TimeSpan.FromSeconds(60);

    public static Task<T> WithTimeout<T>(this ValueTask<T> task) => task.AsTask().WaitAsync(TestTimeout);

    public static Task<T> WithTimeout<T>(this Task<T> task) => task.WaitAsync(TestTimeout);

    public static Task WithTimeout(this Task task) => task.WaitAsync(TestTimeout);

    public static Task WithTimeout(this ValueTask task) => task.AsTask().WaitAsync(TestTimeout);

    public static Locator At(string address, ushort port = 4000, LocatorKind kind = LocatorKind.Host)
        => new(IPAddress.Parse(address), port, kind);

    public static GnsRecord Record(HostKey key, ulong version, string? name = null, params string[] addresses)
        => GnsRecord.Create(key, version, addresses.Select(a => At(a)), ttlSeconds: 30, name: name);
}

/// <summary>A folder under the temp directory, deleted with everything in it on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "mobility-gns-store-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public void Dispose()
    {
        if (Directory.Exists(Path))
        {
            Directory.Delete(Path, recursive: true);
        }
    }
}

/// <summary>Keeps every log entry so a test can check what was logged and at which level.</summary>
internal sealed class CapturingLogger<T> : ILogger<T>
{
    public ConcurrentQueue<(LogLevel Level, EventId Id, string Message)> Entries { get; } = new();

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        => Entries.Enqueue((logLevel, eventId, formatter(state, exception)));
}
