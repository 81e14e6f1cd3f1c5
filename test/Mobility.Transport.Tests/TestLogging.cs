using System.Collections.Concurrent;

namespace Mobility.Transport.Tests;

/// <summary>Collects log lines in memory; tests print them on failure and check that nothing above Debug was logged for peer-caused events.</summary>
internal sealed class ListLoggerFactory : ILoggerFactory
{
    public ConcurrentQueue<(LogLevel Level, string Category, string Message)> Entries { get; } = new();

    public long Start { get; } = System.Diagnostics.Stopwatch.GetTimestamp();

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public ILogger CreateLogger(string categoryName) => new ListLogger(this, categoryName);

    public void Dispose()
    {
    }

    public string Dump() => string.Join("\n", Entries.Select(e => $"{e.Level} {e.Category}: {e.Message}"));

    private sealed class ListLogger(ListLoggerFactory owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var ms = System.Diagnostics.Stopwatch.GetElapsedTime(owner.Start).TotalMilliseconds;
            owner.Entries.Enqueue((logLevel, category.Split('.').Last(), $"{ms:0.0} {formatter(state, exception)}{(exception is null ? "" : " " + exception)}"));
        }
    }
}
