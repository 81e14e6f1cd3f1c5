using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Mobility.Testing;

/// <summary>One log entry as a <see cref="RecordingLoggerProvider"/> kept it.</summary>
public sealed record LogEntry(string Category, LogLevel Level, EventId Id, string Message, Exception? Exception)
{
    public override string ToString() => $"{Level} {Category}[{Id.Id}]: {Message}" + (Exception is null ? "" : " " + Exception);
}

/// <summary>
/// Keeps every log entry of every category so a test can assert on levels: that a peer-caused event
/// stays at Debug, or that nothing unexpected was logged at all (<see cref="AssertNoWarningsOrErrors"/>,
/// as grpc-dotnet's VerifyNoErrorsScope does). Memory is bounded: past <see cref="MaxEntries"/> the
/// oldest entries are dropped (and counted), so a test that floods the log cannot exhaust memory.
/// </summary>
public sealed class RecordingLoggerProvider : ILoggerProvider
{
    /// <summary>100,000 entries: far more than any test logs, small enough to keep in memory.</summary>
    public const int MaxEntries = 100_000;

    private readonly ConcurrentQueue<LogEntry> _entries = new();
    private long _dropped;

    public IReadOnlyCollection<LogEntry> Entries => _entries;

    /// <summary>How many old entries were dropped to stay under <see cref="MaxEntries"/>.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    /// <summary>A typed logger that records into this provider under <typeparamref name="T"/>'s category.</summary>
    public ILogger<T> CreateLogger<T>() => new Logger<T>(this);

    public IEnumerable<LogEntry> AtLeast(LogLevel level) => _entries.Where(e => e.Level >= level);

    /// <summary>Fails when anything was logged at Warning or above (an unexpected warning is a bug even when the test passed).</summary>
    public void AssertNoWarningsOrErrors() => AssertNothingAtOrAbove(LogLevel.Warning);

    /// <summary>Fails when anything was logged at Error or above.</summary>
    public void AssertNoErrors() => AssertNothingAtOrAbove(LogLevel.Error);

    /// <summary>Forgets every entry so far (for a test that expects warnings in one phase and none in the next).</summary>
    public void Clear() => _entries.Clear();

    public void Dispose()
    {
    }

    private void AssertNothingAtOrAbove(LogLevel level)
    {
        var found = AtLeast(level).ToArray();
        if (found.Length > 0)
        {
            throw new Xunit.Sdk.XunitException(
                $"{found.Length} log entries at {level} or above:\n" + string.Join('\n', found.Select(e => e.ToString())));
        }
    }

    private void Add(LogEntry entry)
    {
        _entries.Enqueue(entry);
        while (_entries.Count > MaxEntries && _entries.TryDequeue(out _))
        {
            Interlocked.Increment(ref _dropped);
        }
    }

    private class Logger(RecordingLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => owner.Add(new LogEntry(category, logLevel, eventId, formatter(state, exception), exception));
    }

    private sealed class Logger<T>(RecordingLoggerProvider owner) : Logger(owner, typeof(T).FullName ?? typeof(T).Name), ILogger<T>;
}

/// <summary>A typed logger for constructing one component by hand, with its own <see cref="RecordingLoggerProvider"/>.</summary>
public sealed class RecordingLogger<T> : ILogger<T>
{
    private readonly ILogger<T> _inner;

    public RecordingLogger() => _inner = Provider.CreateLogger<T>();

    public RecordingLoggerProvider Provider { get; } = new();

    public IReadOnlyCollection<LogEntry> Entries => Provider.Entries;

    public void AssertNoWarningsOrErrors() => Provider.AssertNoWarningsOrErrors();

    public void AssertNoErrors() => Provider.AssertNoErrors();

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => _inner.BeginScope(state);

    public bool IsEnabled(LogLevel logLevel) => _inner.IsEnabled(logLevel);

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        => _inner.Log(logLevel, eventId, state, exception, formatter);
}
