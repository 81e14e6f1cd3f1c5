namespace Mobility.Daemon.Access;

/// <summary>
/// Who may use the daemon's local surfaces (SOCKS5, the HTTP/JSON and gRPC endpoints, the Unix
/// sockets) and so act with the host's identity. Root and the daemon's own user are always
/// admitted, and so are the members of the daemon's effective group and of <see cref="MobilitydOptions.SocketGroup"/>;
/// these lists add more. See docs/mobilityd.md, "Local access".
/// </summary>
public sealed class LocalAccessOptions
{
    /// <summary>Most entries in each list (a list is read at start and checked on every connection).</summary>
    public const int MaxEntries = 256;

    /// <summary>More users admitted (names or numeric uids).</summary>
    public string[] Users { get; set; } = [];

    /// <summary>More groups whose members are admitted (names or numeric gids); membership is looked up when a user connects.</summary>
    public string[] Groups { get; set; } = [];
}
