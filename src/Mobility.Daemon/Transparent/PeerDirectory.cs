using Mobility.Daemon.Peers;
using Mobility.Gns.Client;
using Mobility.Protocol.Identity;

namespace Mobility.Daemon.Transparent;

/// <summary>Where the DNS stub learns that a name or GUID is a registered peer.</summary>
public interface IPeerDirectory
{
    /// <summary>The GUID registered under <paramref name="name"/> (a valid host name), or null when none is.</summary>
    Task<HostGuid?> FindNameAsync(string name, CancellationToken cancellationToken);

    /// <summary>True when <paramref name="guid"/> has a record.</summary>
    Task<bool> IsRegisteredAsync(HostGuid guid, CancellationToken cancellationToken);
}

/// <summary>The GNS, through the watched records (so a peer the stub named is watched, as a SOCKS5 target is).</summary>
public sealed class GnsPeerDirectory(WatchedRecords records) : IPeerDirectory
{
    public async Task<HostGuid?> FindNameAsync(string name, CancellationToken cancellationToken)
        => (await records.LookupNameAsync(name, cancellationToken).ConfigureAwait(false))?.Guid;

    public async Task<bool> IsRegisteredAsync(HostGuid guid, CancellationToken cancellationToken)
        => await records.LookupAsync(guid, cancellationToken: cancellationToken).ConfigureAwait(false) is not null;
}

/// <summary>The GNS did not answer: the stub answers SERVFAIL, so that the resolver tries again.</summary>
internal static class PeerDirectoryErrors
{
    public static bool IsLookupFailure(Exception e) => e is GnsException or TimeoutException;
}
