namespace Mobility.Netlab.Topology;

/// <summary>
/// Naming of everything the harness creates: namespaces are <c>mlab-PID-N-ROLE</c>, so leftovers of a killed run
/// can be found (prefix <see cref="Prefix"/>) and told apart from those of a live run (the owner's process id).
/// </summary>
public static class LabNames
{
    public const string Prefix = "mlab-";

    private static int s_counter;

    /// <summary>Prefix shared by every lab of this process; the reaper removes exactly these.</summary>
    public static string ProcessPrefix { get; } = $"{Prefix}{Environment.ProcessId}-";

    /// <summary>A fresh prefix for one lab, e.g. <c>mlab-4242-3-</c>.</summary>
    public static string NewLabPrefix() => $"{ProcessPrefix}{Interlocked.Increment(ref s_counter)}-";

    /// <summary>The process id that owns <paramref name="name"/>, or null when the name is not ours or malformed.</summary>
    public static int? OwnerOf(string name)
    {
        if (!name.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return null;
        }

        var rest = name.AsSpan(Prefix.Length);
        var dash = rest.IndexOf('-');
        return dash > 0 && int.TryParse(rest[..dash], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var pid) ? pid : null;
    }
}
