using System.CommandLine;
using System.CommandLine.Invocation;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Mobility.Hosting;

/// <summary>
/// The start-up the server executables share (<c>gns serve</c>, <c>mobility-relay serve</c>), compiled into each
/// (linked, as <see cref="StartupErrors"/>): settings from defaults, ./appsettings.json, environment variables with
/// the program's prefix and the flags, in rising priority; logs on stderr; a bad command line or setting is one line
/// on stderr and <see cref="UsageExitCode"/>, a failure to start one line and <see cref="StartFailureExitCode"/>
/// (the stack trace only at Debug); once listening, the ready line is the one line on stdout.
/// </summary>
internal sealed class ServerHost(string program, string environmentPrefix)
{
    /// <summary>Exit code of a bad command line or setting (sysexits EX_USAGE, as mob and mobilityd).</summary>
    public const int UsageExitCode = 64;

    /// <summary>Exit code when the server could not start (a port taken, a file it needs unreadable or in use).</summary>
    public const int StartFailureExitCode = 1;

    /// <summary>The executable's name, which starts every line it writes on stderr itself (<c>gns: ...</c>).</summary>
    public string Program { get; } = program;

    /// <summary>Prefix of the environment variables read besides the standard ones (<c>GNS_</c>: GNS_Gns__Udp=127.0.0.1:7353).</summary>
    public string EnvironmentPrefix { get; } = environmentPrefix;

    /// <summary>
    /// Parses <paramref name="args"/> and runs the command: a parse error is one line, <c>PROGRAM: error (see
    /// 'PROGRAM --help')</c>, and <see cref="UsageExitCode"/>. The generic host handles SIGINT/SIGTERM (and systemd's
    /// stop), so System.CommandLine must not race it.
    /// </summary>
    public async Task<int> InvokeAsync(RootCommand root, string[] args)
    {
        ArgumentNullException.ThrowIfNull(root);
        var parseResult = root.Parse(args);
        if (parseResult.Action is ParseErrorAction && parseResult.Errors.Count > 0)
        {
            await Console.Error.WriteLineAsync($"{Program}: {parseResult.Errors[0].Message} (see '{Program} --help')");
            return UsageExitCode;
        }

        try
        {
            return await parseResult.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (StartupErrors.IsBadSetting(e))
        {
            // A setting bound before the host starts (gns serve's endpoints, the relay's limits) that does not convert.
            return await UsageErrorAsync(StartupErrors.Describe(e));
        }
        catch (Exception e)
        {
            // What System.CommandLine's default handler does, which is off so that the catch above sees a bad setting.
            if (e is not OperationCanceledException)
            {
                await Console.Error.WriteLineAsync($"Unhandled exception: {e}");
            }

            return 1;
        }
    }

    /// <summary>The configuration keys of the flags given on the command line (not their defaults), with their values.</summary>
    public static Dictionary<string, string?> Overrides(ParseResult parseResult, params ReadOnlySpan<(Option<string> Option, string Key)> flags)
    {
        ArgumentNullException.ThrowIfNull(parseResult);
        var overrides = new Dictionary<string, string?>();
        foreach (var (option, key) in flags)
        {
            if (parseResult.GetResult(option) is { Implicit: false } && parseResult.GetValue(option) is { } value)
            {
                overrides[key] = value;
            }
        }

        return overrides;
    }

    /// <summary>
    /// Default log levels: Information, but Kestrel and routing log every request and connection event at Information
    /// (and Debug), so ASP.NET Core only from Warning: a peer must not be able to fill the log.
    /// </summary>
    private static readonly Dictionary<string, string?> LogDefaults = new()
    {
        ["Logging:LogLevel:Default"] = "Information",
        ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
    };

    /// <summary>
    /// A web application builder with the settings in rising priority (the log defaults and <paramref name="defaults"/>, ./appsettings.json,
    /// environment variables that start with <see cref="EnvironmentPrefix"/>, <paramref name="overrides"/>) and
    /// the console logger on stderr, reporting start-up failures once (<see cref="StartupErrors"/>).
    /// </summary>
    public WebApplicationBuilder CreateBuilder(IReadOnlyDictionary<string, string?> overrides, IReadOnlyDictionary<string, string?>? defaults = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [] });
        IEnumerable<KeyValuePair<string, string?>> initial = defaults is null ? LogDefaults : LogDefaults.Concat(defaults);
        builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource { InitialData = initial });
        builder.Configuration.AddEnvironmentVariables(EnvironmentPrefix);
        builder.Configuration.AddInMemoryCollection(overrides);

        builder.Logging.ClearProviders();
        builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        StartupErrors.ReportOnce(builder.Logging, StartupErrors.StackTracesEnabled(builder.Configuration));
        builder.Host.UseSystemd();
        return builder;
    }

    /// <summary>Writes <c>PROGRAM: problem</c> on stderr (one line) and returns <see cref="UsageExitCode"/>.</summary>
    public async Task<int> UsageErrorAsync(string problem)
    {
        await Console.Error.WriteLineAsync($"{Program}: {StartupErrors.OneLine(problem)}");
        return UsageExitCode;
    }

    /// <summary>
    /// Starts <paramref name="app"/>, prints the ready line <paramref name="readyLine"/> gives once it listens, and
    /// runs until shutdown (0). A failure to start is one line naming what failed (e.g. "cannot bind UDP
    /// 127.0.0.1:7353 (GNS datagram endpoint): Address already in use"): <see cref="UsageExitCode"/> for a bad
    /// setting, else <see cref="StartFailureExitCode"/>.
    /// </summary>
    public async Task<int> RunAsync(WebApplication app, Func<string> readyLine, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(readyLine);
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch (Exception ex) when (StartupErrors.IsStartFailure(ex) || ex is ArgumentException)
        {
            await Console.Error.WriteLineAsync($"{Program}: {StartupErrors.Describe(ex)}");
            if (app.Services.GetRequiredService<StartupErrors>().StackTraces)
            {
                await Console.Error.WriteLineAsync(ex.ToString());
            }

            return ex is OptionsValidationException or ArgumentException || StartupErrors.IsBadSetting(ex) ? UsageExitCode : StartFailureExitCode;
        }

        // The one line on stdout: scripts and tests wait for it and read the real ports from it.
        Console.Out.WriteLine(readyLine());
        Console.Out.Flush();

        await app.WaitForShutdownAsync(CancellationToken.None);
        return 0;
    }

    /// <summary>A Kestrel endpoint's bound address for the ready line, or "off" when it was not configured.</summary>
    public static string EndPoint(ListenOptions? listen) => listen?.IPEndPoint?.ToString() ?? "off";

    /// <summary>A Kestrel HTTP endpoint's URL for the ready line (<c>http://IP:PORT</c>), or "off".</summary>
    public static string Url(ListenOptions? listen) => listen?.IPEndPoint is { } endPoint ? $"http://{endPoint}" : "off";
}
