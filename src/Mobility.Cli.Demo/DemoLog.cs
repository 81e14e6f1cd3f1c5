using Microsoft.Extensions.Logging;
using Mobility.Net.Text;

namespace Mobility.Cli.Demo;

/// <summary>
/// Logs of the embedded GNS, the daemon parts and the transport during a demo. Warnings and errors
/// are always kept (the last <see cref="MaxKept"/>, for the summary: a clean run has none); with
/// --verbose every line from Debug up also goes to stderr as it happens.
/// </summary>
public sealed class DemoLog : ILoggerProvider
{
    /// <summary>Warnings kept for the summary; a misbehaving run must not grow memory.</summary>
    public const int MaxKept = 20;

    private readonly TextWriter? _verbose;
    private readonly Lock _gate = new();
    private readonly Queue<string> _problems = new();
    private int _problemCount;

    public DemoLog(TextWriter? verbose) => _verbose = verbose;

    public LogLevel MinimumLevel => _verbose is null ? LogLevel.Warning : LogLevel.Debug;

    /// <summary>Warnings and errors logged so far.</summary>
    public int ProblemCount => Volatile.Read(ref _problemCount);

    public IReadOnlyList<string> Problems
    {
        get
        {
            lock (_gate)
            {
                return [.. _problems];
            }
        }
    }

    public ILoggerFactory CreateFactory() => LoggerFactory.Create(b => b.AddProvider(this).SetMinimumLevel(MinimumLevel));

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private void Write(LogLevel level, string category, string message, Exception? exception)
    {
        var line = $"{level.ToString().ToLowerInvariant()}: {category}: {SafeText.OneLine(message)}{(exception is null ? "" : $" ({SafeText.OneLine(exception.Message)})")}";
        if (level >= LogLevel.Warning)
        {
            Interlocked.Increment(ref _problemCount);
            lock (_gate)
            {
                _problems.Enqueue(line);
                if (_problems.Count > MaxKept)
                {
                    _problems.Dequeue();
                }
            }
        }

        if (_verbose is not null)
        {
            lock (_gate)
            {
                _verbose.WriteLine(line);
                _verbose.Flush();
            }
        }
    }

    private sealed class Logger(DemoLog owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None && logLevel >= owner.MinimumLevel;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                ArgumentNullException.ThrowIfNull(formatter);
                owner.Write(logLevel, category, formatter(state, exception), exception);
            }
        }
    }
}
