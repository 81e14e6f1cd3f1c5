using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using Mobility.Cli.Commands;

namespace Mobility.Cli;

/// <summary>
/// The <c>mob</c> command-line tool. Command groups live in <c>Commands/</c>, one file each, and are
/// listed in <see cref="CommandGroups"/>; exit codes are in <see cref="ExitCodes"/>.
/// </summary>
public static class Program
{
    public static Task<int> Main(string[] args)
    {
        CommonOptions.TerminalOut = Console.IsOutputRedirected ? null : Console.Out;
        return RunAsync(args, Console.Out, Console.Error, handleTermination: true, CancellationToken.None);
    }

    /// <summary>Runs <c>mob</c> in-process with the given writers (for tests and embedding).</summary>
    public static Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken = default)
        => RunAsync(args, stdout, stderr, handleTermination: false, cancellationToken);

    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("mob: identities and the Global Name Service of the Mobility system.");
        root.Options.Add(CommonOptions.Json);
        foreach (var group in CommandGroups.All)
        {
            root.Subcommands.Add(group());
        }

        foreach (var help in root.Options.OfType<HelpOption>())
        {
            if (help.Action is HelpAction standard)
            {
                help.Action = new HelpWithExitCodes(standard);
            }
        }

        return root;
    }

    private static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, bool handleTermination, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        var parseResult = BuildRoot().Parse(args);
        if (parseResult.Action is ParseErrorAction && parseResult.Errors.Count > 0)
        {
            var command = parseResult.CommandResult.Command;
            var path = command is RootCommand ? "mob" : $"mob {string.Join(' ', Ancestry(parseResult))}";
            var message = parseResult.UnmatchedTokens.Count > 0
                ? $"unrecognized command or argument '{parseResult.UnmatchedTokens[0]}'"
                : parseResult.Errors[0].Message;
            var line = $"{message} (see '{path} --help')";
            await stderr.WriteLineAsync(WantsJson(parseResult) ? Output.JsonError(ExitCodes.Usage, line) : $"mob: {Output.OneLine(line)}");
            await stderr.FlushAsync(cancellationToken);
            return ExitCodes.Usage;
        }

        if (parseResult.Action is null)
        {
            // A command group without a subcommand ("mob gns"): show its help, as a usage error.
            var line = $"a subcommand is required (see 'mob {string.Join(' ', Ancestry(parseResult))} --help')";
            await stderr.WriteLineAsync(WantsJson(parseResult) ? Output.JsonError(ExitCodes.Usage, line) : $"mob: {line}");
            return ExitCodes.Usage;
        }

        var configuration = new InvocationConfiguration
        {
            Output = stdout,
            Error = stderr,
            EnableDefaultExceptionHandler = true,
        };
        // System.CommandLine 2.0.0 ships with ProcessTerminationTimeout null (dotnet/command-line-api#2739), which
        // leaves the handlers' token uncancelled on Ctrl-C/SIGTERM: long-running commands (gns watch, forward,
        // connect) would be killed without closing their connections. Set the documented 2 s default explicitly.
        configuration.ProcessTerminationTimeout = handleTermination ? TimeSpan.FromSeconds(2) : null;

        return await parseResult.InvokeAsync(configuration, cancellationToken);
    }

    /// <summary>--json was on the command line, even when the rest of it does not parse.</summary>
    private static bool WantsJson(ParseResult parseResult)
        => parseResult.Tokens.Any(t => t.Value == CommonOptions.Json.Name) || parseResult.UnmatchedTokens.Contains(CommonOptions.Json.Name);

    private static IEnumerable<string> Ancestry(ParseResult parseResult)
    {
        var names = new Stack<string>();
        for (var result = parseResult.CommandResult; result is not null && result.Command is not RootCommand;
             result = result.Parent as System.CommandLine.Parsing.CommandResult)
        {
            names.Push(result.Command.Name);
        }

        return names;
    }

    /// <summary>The standard help, followed by the exit codes and environment variables.</summary>
    private sealed class HelpWithExitCodes(HelpAction standard) : SynchronousCommandLineAction
    {
        public override bool ClearsParseErrors => true;

        public override int Invoke(ParseResult parseResult)
        {
            var result = standard.Invoke(parseResult);
            var output = parseResult.InvocationConfiguration.Output;
            output.WriteLine(ExitCodes.Help);
            return result;
        }
    }
}
