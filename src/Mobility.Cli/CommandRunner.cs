using System.CommandLine;
using Mobility.Gns.Client;
using Mobility.Protocol.Gns;

namespace Mobility.Cli;

/// <summary>What a command's handler gets: the parse result, the output and the cancellation token (Ctrl-C).</summary>
public sealed class CommandContext(ParseResult parseResult, Output output, CancellationToken cancellationToken)
{
    public ParseResult ParseResult { get; } = parseResult;

    public Output Output { get; } = output;

    public CancellationToken CancellationToken { get; } = cancellationToken;

    public T? Get<T>(Option<T> option) => ParseResult.GetValue(option);

    public T? Get<T>(Argument<T> argument) => ParseResult.GetValue(argument);
}

/// <summary>
/// Runs command handlers and turns failures into one line on stderr plus an exit code
/// (<see cref="ExitCodes"/>), so no handler repeats that logic.
/// </summary>
public static class CommandRunner
{
    /// <summary>Sets <paramref name="handler"/> as the action of <paramref name="command"/>.</summary>
    public static void SetHandler(this Command command, Func<CommandContext, Task<int>> handler)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(handler);
        command.SetAction((parseResult, cancellationToken) => RunAsync(parseResult, handler, cancellationToken));
    }

    private static async Task<int> RunAsync(ParseResult parseResult, Func<CommandContext, Task<int>> handler, CancellationToken cancellationToken)
    {
        var output = new Output(
            parseResult.InvocationConfiguration.Output,
            parseResult.InvocationConfiguration.Error,
            parseResult.GetValue(CommonOptions.Json),
            CommonOptions.IsTerminal(parseResult.InvocationConfiguration.Output));
        try
        {
            return await handler(new CommandContext(parseResult, output, cancellationToken));
        }
        catch (CliException e)
        {
            return output.Fail(e.ExitCode, e.Message);
        }
        catch (GnsException e)
        {
            return output.Fail(ExitCodeOf(e.Code), e.Message);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return output.Fail(ExitCodes.Interrupted, "interrupted");
        }
    }

    public static int ExitCodeOf(GnsErrorCode code) => code switch
    {
        GnsErrorCode.NotFound => ExitCodes.NotFound,
        GnsErrorCode.BadSignature or GnsErrorCode.StaleVersion or GnsErrorCode.NameTaken or GnsErrorCode.InvalidRecord => ExitCodes.Rejected,
        GnsErrorCode.Unavailable => ExitCodes.Unreachable,
        _ => ExitCodes.Failure,
    };
}
