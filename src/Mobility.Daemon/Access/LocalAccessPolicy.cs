using System.Collections.Frozen;
using System.Globalization;
using System.Net.Sockets;
using Microsoft.Extensions.Options;
using Mobility.Protocol.Identity;

namespace Mobility.Daemon.Access;

/// <summary>Whether a local caller may act with the host's identity, and why not.</summary>
public readonly record struct LocalAccessVerdict(bool Admitted, uint? UserId, string Reason);

/// <summary>
/// The one rule for every local surface (SOCKS5, HTTP/JSON, gRPC, the Unix sockets): a caller is
/// admitted when the kernel names its user (<see cref="LocalCaller"/>) and that user is root, the
/// daemon's effective user, a user in <see cref="LocalAccessOptions.Users"/>, or a member (primary or
/// supplementary, asked of the user database on each connection) of the daemon's effective group, of
/// <see cref="MobilitydOptions.SocketGroup"/> or of a group in <see cref="LocalAccessOptions.Groups"/>.
/// Anyone else, and any caller whose user is unknown (another host, another network namespace), is refused.
/// Names in the options are resolved at start; an unknown one stops the daemon.
/// </summary>
public sealed class LocalAccessPolicy
{
    private readonly uint _daemonUser;
    private readonly FrozenSet<uint> _users;
    private readonly FrozenSet<uint> _groups;

    public LocalAccessPolicy(IOptions<MobilitydOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var value = options.Value;
        _daemonUser = UnixFiles.EffectiveUserId();
        var failures = new List<string>();
        if (value.LocalAccess.Users.Length > LocalAccessOptions.MaxEntries || value.LocalAccess.Groups.Length > LocalAccessOptions.MaxEntries)
        {
            failures.Add($"LocalAccess:Users and LocalAccess:Groups hold at most {LocalAccessOptions.MaxEntries} entries each.");
        }

        var users = new HashSet<uint> { 0, _daemonUser };
        foreach (var user in value.LocalAccess.Users)
        {
            if (UserDatabase.UserId(user) is { } uid)
            {
                users.Add(uid);
            }
            else
            {
                failures.Add($"LocalAccess:Users names '{user}', which is not a user on this system.");
            }
        }

        var groups = new HashSet<uint>();
        if (!OperatingSystem.IsWindows())
        {
            groups.Add(UserDatabase.EffectiveGroupId());
        }

        var named = value.LocalAccess.Groups.Select(g => ("LocalAccess:Groups", g));
        if (!string.IsNullOrWhiteSpace(value.SocketGroup))
        {
            named = named.Append(("SocketGroup", value.SocketGroup));
        }

        foreach (var (option, group) in named)
        {
            if (UserDatabase.GroupId(group) is { } gid)
            {
                groups.Add(gid);
            }
            else
            {
                failures.Add($"{option} names '{group}', which is not a group on this system.");
            }
        }

        if (failures.Count > 0)
        {
            throw new OptionsValidationException(nameof(MobilitydOptions), typeof(MobilitydOptions), failures);
        }

        _users = users.ToFrozenSet();
        _groups = groups.ToFrozenSet();
    }

    /// <summary>Decides for the caller at the other end of <paramref name="socket"/>.</summary>
    public LocalAccessVerdict Check(Socket socket) => Check(LocalCaller.UserOf(socket));

    /// <summary>Decides for the user <paramref name="uid"/> (null: the kernel could not say who it is).</summary>
    public LocalAccessVerdict Check(uint? uid)
    {
        if (uid is not { } user)
        {
            return new LocalAccessVerdict(false, null,
                "the caller's user cannot be determined (not a local connection from this network namespace), so it cannot act as this host");
        }

        if (_users.Contains(user))
        {
            return new LocalAccessVerdict(true, user, "admitted user");
        }

        if (UserDatabase.User(user) is { } entry && UserDatabase.GroupsOf(entry.Name, entry.Gid).Any(_groups.Contains))
        {
            return new LocalAccessVerdict(true, user, "member of an admitted group");
        }

        var gids = string.Join(',', _groups.Order().Select(g => g.ToString(CultureInfo.InvariantCulture)));
        return new LocalAccessVerdict(false, user,
            $"uid {user} may not act as this host: only root, the daemon's user (uid {_daemonUser}), LocalAccess:Users and members of the groups {gids} may");
    }
}
