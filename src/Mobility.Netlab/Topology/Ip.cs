using Mobility.Netlab.Processes;

namespace Mobility.Netlab.Topology;

/// <summary>Thin wrappers over iproute2 (<c>ip -n NS ...</c>) and <c>sysctl</c> inside a namespace.</summary>
public static class Ip
{
    public static Task<string> RunAsync(params string[] arguments) => CommandRunner.RunCheckedAsync("ip", arguments);

    /// <summary><c>ip -n NS args...</c>: iproute2 enters the namespace itself.</summary>
    public static Task<string> InAsync(string ns, params string[] arguments) => CommandRunner.RunCheckedAsync("ip", ["-n", ns, .. arguments]);

    /// <summary>
    /// Runs several iproute2 commands in one process (<c>ip -n NS -batch -</c>), in order, stopping at the first
    /// failure. One process spawn instead of one per command matters on a loaded machine: it is what keeps a move's
    /// address/route change down to milliseconds instead of hundreds of them.
    /// </summary>
    /// <remarks><paramref name="ipv6"/> runs the batch as <c>ip -6</c>: commands whose family iproute2 does not infer from an address (<c>rule</c>) then act on IPv6.</remarks>
    public static Task<string> BatchAsync(string ns, IEnumerable<string> commands, bool ipv6 = false) =>
        CommandRunner.RunCheckedAsync("ip", [.. ipv6 ? (string[])["-6"] : [], "-n", ns, "-batch", "-"], standardInput: string.Join('\n', commands) + "\n");

    public static Task<string> SysctlAsync(string ns, string key, string value) =>
        CommandRunner.RunCheckedAsync("ip", ["netns", "exec", ns, "sysctl", "-q", "-w", $"{key}={value}"]);

    /// <summary>Runs a command inside the namespace to completion (<c>ip netns exec NS cmd ...</c>).</summary>
    public static Task<CommandResult> ExecAsync(string ns, string fileName, IEnumerable<string> arguments, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        CommandRunner.RunAsync("ip", ["netns", "exec", ns, fileName, .. arguments], timeout, cancellationToken);
}
