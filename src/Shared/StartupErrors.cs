using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;

namespace Mobility.Hosting;

/// <summary>
/// A start-up failure is one line on stderr (<c>mobilityd: ...</c>, <c>gns: ...</c>), printed by the
/// program (mobilityd's <c>MobilitydHost.RunAsync</c>, <c>gns serve</c>); the stack trace follows only when
/// logging at Debug. This file is compiled into both hosts (linked, as aspnetcore's src/Shared). To that end
/// the console logger is wrapped: the generic host's own "Hosting failed to start" entry (the same
/// failure again, with its stack trace) is dropped, and any other entry's exception is reduced to its
/// message unless <see cref="StackTraces"/>.
/// </summary>
internal sealed class StartupErrors(bool stackTraces)
{
    /// <summary>The generic host's category; it logs the start-up failure that the program reports itself.</summary>
    private const string HostCategory = "Microsoft.Extensions.Hosting.Internal.Host";

    public bool StackTraces { get; } = stackTraces;

    /// <summary>Stack traces are shown when the default log level is Debug or Trace.</summary>
    public static bool StackTracesEnabled(IConfiguration configuration)
        => Enum.TryParse<LogLevel>(configuration["Logging:LogLevel:Default"], ignoreCase: true, out var level) && level <= LogLevel.Debug;

    /// <summary>Replaces the console logger provider by one that reports exceptions as above.</summary>
    public static void ReportOnce(ILoggingBuilder logging, bool stackTraces)
    {
        var errors = new StartupErrors(stackTraces);
        logging.Services.AddSingleton(errors);
        logging.Services.RemoveAll<ILoggerProvider>();
        logging.Services.AddSingleton<ILoggerProvider>(sp => new Provider(
            new ConsoleLoggerProvider(sp.GetRequiredService<IOptionsMonitor<ConsoleLoggerOptions>>(), sp.GetServices<ConsoleFormatter>()), errors));
    }

    /// <summary>Failures of start that are the environment's or the configuration's, not a bug: reported in one line.</summary>
    public static bool IsStartFailure(Exception e)
        => e is AggregateException { InnerExceptions: [var inner] }
            ? IsStartFailure(inner)
            : e is IOException or UnauthorizedAccessException or SocketException or InvalidDataException or OptionsValidationException
                || IsBadSetting(e);

    /// <summary>
    /// A setting the configuration binder could not convert (<c>Failed to convert configuration value 'x' at 'Gns:MaxTtl' to
    /// type 'System.TimeSpan'.</c>, from an environment variable or appsettings.json): a bad setting like one that fails
    /// validation, not a bug. The binder throws a plain InvalidOperationException around the converter's exception.
    /// </summary>
    public static bool IsBadSetting(Exception e)
        => e is AggregateException { InnerExceptions: [var inner] }
            ? IsBadSetting(inner)
            : e is InvalidOperationException { InnerException: FormatException or ArgumentException }
                && e.Message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal);

    /// <summary>The message of <paramref name="e"/> (or of its one inner exception), on one line.</summary>
    public static string Describe(Exception e)
        => OneLine(e is AggregateException { InnerExceptions: [var inner] } ? inner.Message : e.Message);

    public static string OneLine(string message)
        => string.Join(' ', message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    private sealed class Provider(ILoggerProvider inner, StartupErrors errors) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(inner.CreateLogger(categoryName), categoryName == HostCategory, errors.StackTraces);

        public void Dispose() => inner.Dispose();
    }

    private sealed class Logger(ILogger inner, bool host, bool stackTraces) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (exception is null || stackTraces)
            {
                inner.Log(logLevel, eventId, state, exception, formatter);
                return;
            }

            if (host && logLevel >= LogLevel.Error && IsStartFailure(exception) && eventId.Name is "HostedServiceStartupFaulted" or "HostingStartupFailed")
            {
                return;
            }

            inner.Log(logLevel, eventId, state, null, (s, e) => $"{formatter(s, exception)} ({exception.GetType().Name}: {OneLine(exception.Message)})");
        }
    }
}
