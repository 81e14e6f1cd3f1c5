using System.CommandLine;

namespace Mobility.Cli.Commands;

/// <summary>
/// The top-level command groups of <c>mob</c>. A new group is a new file in this folder with a
/// <c>static Command Create()</c>, plus one line here; existing groups stay untouched.
/// </summary>
public static class CommandGroups
{
    public static IReadOnlyList<Func<Command>> All { get; } =
    [
        // The README's first command: embedded GNS, two hosts, a stream that survives their moves.
        DemoCommand.Create,
        IdCommands.Create,
        GnsCommands.Create,
        // mobilityd's API (over its Unix socket): guid, ip, guids, challenge, status, addresses.
        .. DaemonCommands.All,
        // Unmodified applications through mobilityd: expose, unexpose, exposed, connect, forward.
        .. ForwardCommands.All,
    ];
}
