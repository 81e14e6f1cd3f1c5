using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Mobility.Daemon.Tests.Infrastructure;

/// <summary>Keeps every log entry of a daemon so tests can assert on levels (peer-caused events must stay at Debug).</summary>
public sealed class LogCapture : ILoggerProvider
{
    public ConcurrentQueue<(string Category, LogLevel Level, EventId Id, string Message)> Entries { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public IEnumerable<(string Category, LogLevel Level, EventId Id, string Message)> AtLeast(LogLevel level)
        => Entries.Where(e => e.Level >= level);

    public void Dispose()
    {
    }

    private sealed class Logger(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => owner.Entries.Enqueue((category, logLevel, eventId, formatter(state, exception)));
    }
}
