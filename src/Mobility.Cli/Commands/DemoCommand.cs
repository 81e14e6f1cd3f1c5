using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Mobility.Cli.Demo;
using Spectre.Console;

namespace Mobility.Cli.Commands;

/// <summary>
/// <c>mob demo</c>: an embedded GNS and two hosts on loopback addresses, data streamed between them
/// over one mobile TCP connection while one host moves, then the other, then both; the stall of each
/// move and the SHA-256 of both ends. No root, no setup. The work is in the Mobility.Cli.Demo project.
/// </summary>
public static class DemoCommand
{
    /// <summary>How often the plain output prints a progress line.</summary>
    private static readonly TimeSpan PlainProgressInterval = TimeSpan.FromSeconds(1);

    /// <summary>How often the live display is redrawn.</summary>
    private static readonly TimeSpan LiveRefreshInterval = TimeSpan.FromMilliseconds(100);

    public static Command Create()
    {
        var duration = new Option<TimeSpan?>("--duration")
        {
            Description = $"How long to stream (default {DemoSettings.DefaultDuration.TotalSeconds:0}s); the moves come at each quarter. E.g. 8s, 500ms, 2m",
            HelpName = "TIME",
            CustomParser = result => ParseDuration(result, "--duration", DemoSettings.MinDuration, DemoSettings.MaxDuration),
        };
        var size = new Option<long?>("--size")
        {
            Description = "Stream this many bytes instead of for a time; the moves come at each quarter. E.g. 512MiB, 2G",
            HelpName = "BYTES",
            CustomParser = ParseSize,
        };
        var moveTimeout = new Option<TimeSpan?>("--move-timeout")
        {
            Description = $"A move that has not resumed after this long fails the demo (default {DemoSettings.DefaultMoveTimeout.TotalSeconds:0}s)",
            HelpName = "TIME",
            CustomParser = result => ParseDuration(result, "--move-timeout", TimeSpan.FromMilliseconds(100), TimeSpan.FromMinutes(10)),
        };
        var seed = new Option<ulong?>("--seed")
        {
            Description = "Seed of the pseudo-random data, 16 hex digits (default: random, printed)",
            HelpName = "HEX",
            CustomParser = ParseSeed,
        };
        var plain = new Option<bool>("--plain") { Description = "No live display: one line per event and a progress line per second (the default when stdout is not a terminal)" };
        var verbose = new Option<bool>("--verbose") { Description = "Logs of the GNS, the hosts and the transport on stderr" };
        var command = new Command("demo",
            "Two hosts on 127.0.0.x with an embedded GNS stream data over mobile TCP while they move; prints each move's stall " +
            "and the SHA-256 of both ends (no root, no setup; exit 0 only if every move resumed and the hashes are equal)")
        {
            duration, size, moveTimeout, seed, plain, verbose,
        };
        command.Validators.Add(result =>
        {
            if (result.GetResult(duration) is { Implicit: false } && result.GetResult(size) is { Implicit: false })
            {
                result.AddError("--duration and --size exclude each other: stream for a time or a number of bytes");
            }
        });

        command.SetHandler(async context =>
        {
            var settings = new DemoSettings
            {
                Budget = context.Get(size) is null ? DemoBudgetKind.Duration : DemoBudgetKind.Size,
                Duration = context.Get(duration) ?? DemoSettings.DefaultDuration,
                Size = context.Get(size) ?? 0,
                MoveTimeout = context.Get(moveTimeout) ?? DemoSettings.DefaultMoveTimeout,
                Seed = context.Get(seed) ?? BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(sizeof(ulong))),
                Plain = context.Get(plain),
                Json = context.Output.Json,
                Verbose = context.Get(verbose),
            };
            // Ctrl-C and SIGTERM stop the demo cleanly (sockets closed, GNS stopped, folder removed; exit 130);
            // a second one ends the process at once. Program sets System.CommandLine's termination timeout, so
            // its token may be cancelled first; this handler may then run after the run has finished.
            using var interrupted = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
            var signals = 0;
            void OnSignal(PosixSignalContext signal)
            {
                if (Interlocked.Increment(ref signals) == 1)
                {
                    signal.Cancel = true;
                    try
                    {
                        interrupted.Cancel();
                    }
                    catch (ObjectDisposedException)
                    {
                        // System.CommandLine's own handler cancelled the run first and it has already finished.
                    }
                }
            }

            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
            try
            {
                return await RunAsync(context, settings, interrupted.Token);
            }
            catch (OperationCanceledException) when (interrupted.IsCancellationRequested)
            {
                return context.Output.Fail(ExitCodes.Interrupted, "demo interrupted; everything it started is stopped and its folder removed");
            }
        });
        return command;
    }

    private static async Task<int> RunAsync(CommandContext context, DemoSettings settings, CancellationToken cancellationToken)
    {
        try
        {
            return await RunDemoAsync(context, settings, cancellationToken);
        }
        catch (DemoException e)
        {
            throw new CliException(e.Failure switch
            {
                DemoFailure.Unreachable => ExitCodes.Unreachable,
                DemoFailure.NotFound => ExitCodes.NotFound,
                _ => ExitCodes.Failure,
            }, e.Message, e);
        }
    }

    private static async Task<int> RunDemoAsync(CommandContext context, DemoSettings settings, CancellationToken cancellationToken)
    {
        var output = context.Output;
        var live = !settings.Plain && !settings.Json && CommonOptions.IsTerminal(output.Out);
        var run = new DemoRun(settings, output.Error);
        var progress = new DemoProgress(run);
        if (live)
        {
            run.Event += progress.OnEvent;
        }
        else if (!settings.Json)
        {
            run.Event += output.Line;
        }

        DemoResult result;
        if (live)
        {
            var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output.Out) });
            result = await console.Live(progress.Render()).AutoClear(false)
                .Overflow(VerticalOverflow.Ellipsis).Cropping(VerticalOverflowCropping.Top).StartAsync(async display =>
            {
                var running = run.RunAsync(cancellationToken);
                while (!running.IsCompleted)
                {
                    display.UpdateTarget(progress.Render());
                    await Task.WhenAny(running, Task.Delay(LiveRefreshInterval, CancellationToken.None));
                }

                display.UpdateTarget(progress.Render());
                return await running;
            });
            DemoReport.WriteRich(console, result);
        }
        else if (!settings.Json)
        {
            var running = run.RunAsync(cancellationToken);
            while (!running.IsCompleted)
            {
                await Task.WhenAny(running, Task.Delay(PlainProgressInterval, CancellationToken.None));
                if (!running.IsCompleted && run.Phase == DemoPhase.Streaming)
                {
                    output.Line(progress.Line());
                }
            }

            result = await running;
            DemoReport.WritePlain(output.Out, result);
        }
        else
        {
            result = await run.RunAsync(cancellationToken);
            output.WriteJson(w => DemoReport.WriteJson(w, result));
        }

        if (!result.Ok)
        {
            await output.Error.WriteLineAsync($"mob: demo {result.Verdict}");
        }

        return result.Ok ? ExitCodes.Success : ExitCodes.Failure;
    }

    private static TimeSpan? ParseDuration(ArgumentResult result, string name, TimeSpan min, TimeSpan max)
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
        if (!DemoSettings.TryParseDuration(text, out var value))
        {
            result.AddError($"{name} '{text}' is not a duration (for example 8s, 500ms, 2m)");
            return null;
        }

        if (value < min || value > max)
        {
            result.AddError($"{name} '{text}' is out of range: between {Describe(min)} and {Describe(max)}");
            return null;
        }

        return value;
    }

    private static long? ParseSize(ArgumentResult result)
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
        if (!DemoSettings.TryParseSize(text, out var value))
        {
            result.AddError($"--size '{text}' is not a size (for example 512MiB, 2G, 1048576)");
            return null;
        }

        if (value is < DemoSettings.MinSize or > DemoSettings.MaxSize)
        {
            result.AddError($"--size '{text}' is out of range: between {Units.Bytes(DemoSettings.MinSize)} and {Units.Bytes(DemoSettings.MaxSize)}");
            return null;
        }

        return value;
    }

    private static ulong? ParseSeed(ArgumentResult result)
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
        if (text.Length is > 0 and <= 16 && ulong.TryParse(text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value))
        {
            return value;
        }

        result.AddError($"--seed '{text}' is not 1 to 16 hexadecimal digits");
        return null;
    }

    private static string Describe(TimeSpan value)
        => value < TimeSpan.FromSeconds(1) ? $"{value.TotalMilliseconds:0}ms"
            : value < TimeSpan.FromMinutes(1) ? $"{value.TotalSeconds:0.###}s"
            : value < TimeSpan.FromHours(1) ? $"{value.TotalMinutes:0.###}m"
            : $"{value.TotalHours:0.###}h";
}
