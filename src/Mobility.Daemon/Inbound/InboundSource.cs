namespace Mobility.Daemon.Inbound;

/// <summary>
/// The source address an exposed port's application sees for a peer's connection (docs/transparent.md, "Inbound").
/// </summary>
public enum InboundSource
{
    /// <summary>Not chosen for the port: <see cref="Virtual"/> while transparent mode is on, <see cref="Local"/> otherwise.</summary>
    Auto,

    /// <summary>The peer's virtual address (its stable identity), bound with IP_TRANSPARENT.</summary>
    Virtual,

    /// <summary>The daemon's own loopback address, 127.0.0.1 (as before inbound delivery existed).</summary>
    Local,
}

/// <summary>The names of <see cref="InboundSource"/> in the API and on <c>mob expose --source</c>.</summary>
public static class InboundSources
{
    /// <summary>"virtual", "local", or "" for <see cref="InboundSource.Auto"/> (the API's default value, left out of its JSON).</summary>
    public static string ToName(InboundSource source) => source switch
    {
        InboundSource.Virtual => "virtual",
        InboundSource.Local => "local",
        _ => "",
    };

    /// <summary>The source named <paramref name="name"/> ("virtual", "local"; empty or "auto" is <see cref="InboundSource.Auto"/>); <see cref="ArgumentException"/> otherwise.</summary>
    public static InboundSource Parse(string? name) => name switch
    {
        null or "" or "auto" => InboundSource.Auto,
        "virtual" => InboundSource.Virtual,
        "local" => InboundSource.Local,
        _ => throw new ArgumentException($"'{Mobility.Net.Text.SafeText.OneLine(name)}' is not a source (virtual, local or auto).", nameof(name)),
    };
}
