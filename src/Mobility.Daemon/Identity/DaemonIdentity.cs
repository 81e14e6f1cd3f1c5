using Microsoft.Extensions.Options;
using Mobility.Daemon.State;
using Mobility.Protocol.Identity;

namespace Mobility.Daemon.Identity;

/// <summary>
/// The host's key pair, loaded from (or created on first start in) <c>&lt;StateDir&gt;/host.key</c>,
/// mode 0600. The state folder is checked first (<see cref="StateDirectory.Secure"/>); a key file
/// that is a symbolic link, is owned by another user, or that group or others can read stops the
/// daemon with one line (<see cref="HostKeyFile.Load"/>).
/// </summary>
public sealed class DaemonIdentity : IDisposable
{
    public const string KeyFileName = "host.key";

    public DaemonIdentity(IOptions<MobilitydOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        KeyPath = Path.Combine(StateDirectory.Secure(options.Value.StateDir), KeyFileName);
        Key = HostKeyFile.LoadOrCreate(KeyPath, out var created);
        Created = created;
    }

    public HostKey Key { get; }

    public HostGuid Guid => Key.Guid;

    public string KeyPath { get; }

    /// <summary>True when this start created the key.</summary>
    public bool Created { get; }

    public void Dispose() => Key.Dispose();
}
