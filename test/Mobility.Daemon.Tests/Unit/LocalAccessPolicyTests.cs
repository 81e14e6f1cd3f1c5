using System.Net.Sockets;
using Mobility.Daemon.Access;
using Mobility.Net.Netlink;

namespace Mobility.Daemon.Tests.Unit;

/// <summary>The local access rule on its own: who is admitted, how names resolve, how the kernel's TCP table is read.</summary>
public sealed class LocalAccessPolicyTests
{
    private static LocalAccessPolicy Policy(string[]? users = null, string[]? groups = null, string? socketGroup = null)
        => new(Options.Create(new MobilitydOptions
        {
            SocketGroup = socketGroup,
            LocalAccess = new LocalAccessOptions { Users = users ?? [], Groups = groups ?? [] },
        }));

    [Fact]
    public void Root_and_the_daemons_user_are_admitted_and_an_unknown_caller_is_not()
    {
        var policy = Policy();

        Assert.True(policy.Check(0u).Admitted);
        Assert.True(policy.Check(UnixFiles.EffectiveUserId()).Admitted);
        var unknown = policy.Check((uint?)null);
        Assert.False(unknown.Admitted);
        Assert.Contains("cannot be determined", unknown.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_user_named_in_the_options_is_admitted_by_name_or_number()
    {
        if (UnixFiles.EffectiveUserId() == 65534)
        {
            return; // nobody is the daemon's own user here: nothing to tell apart.
        }

        Assert.False(Policy().Check(65534u).Admitted);
        Assert.Contains("uid 65534 may not act as this host", Policy().Check(65534u).Reason, StringComparison.Ordinal);
        Assert.True(Policy(users: ["nobody"]).Check(65534u).Admitted);
        Assert.True(Policy(users: ["65534"]).Check(65534u).Admitted);
    }

    [Fact]
    public void A_member_of_an_admitted_group_is_admitted()
    {
        // nobody's primary group is nogroup (Debian) or nobody (Fedora); 65534 either way.
        Assert.True(Policy(groups: ["65534"]).Check(65534u).Admitted);
        Assert.True(Policy(socketGroup: "65534").Check(65534u).Admitted);
    }

    [Fact]
    public void Unknown_names_stop_the_daemon_with_every_bad_name_listed()
    {
        var e = Assert.Throws<OptionsValidationException>(() => Policy(users: ["no-such-user-x1"], groups: ["no-such-group-x1"]));

        Assert.Contains("no-such-user-x1", e.Message, StringComparison.Ordinal);
        Assert.Contains("no-such-group-x1", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Endpoints_are_formatted_as_the_kernel_prints_them()
    {
        if (!BitConverter.IsLittleEndian)
        {
            return;
        }

        Assert.Equal("0100007F:1F90", TcpSocketTable.Format(new IPEndPoint(IPAddress.Loopback, 8080)));
        Assert.Equal("00000000000000000000000001000000:0016", TcpSocketTable.Format(new IPEndPoint(IPAddress.IPv6Loopback, 22)));
    }

    [Theory]
    [InlineData("127.0.0.1", false, false)]
    [InlineData("::1", false, false)]
    [InlineData("127.0.0.1", true, false)] // a dual-mode client (.NET's default) to an IPv4 listener: its row is in tcp6
    [InlineData("127.0.0.1", false, true)] // an IPv4 client to a dual-stack listener: seen as ::ffff:127.0.0.1
    public async Task The_owner_of_a_real_loopback_connection_is_this_process_user(string address, bool dualModeClient, bool dualStackListener)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        var ip = IPAddress.Parse(address);
        using var listener = dualStackListener
            ? new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp) { DualMode = true }
            : new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(dualStackListener ? IPAddress.IPv6Any : ip, 0));
        listener.Listen(1);
        using var client = dualModeClient
            ? new Socket(SocketType.Stream, ProtocolType.Tcp)
            : new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(new IPEndPoint(ip, ((IPEndPoint)listener.LocalEndPoint!).Port)).WaitAsync(TimeSpan.FromSeconds(15));
        using var accepted = await listener.AcceptAsync().WaitAsync(TimeSpan.FromSeconds(15));

        Assert.Equal(UnixFiles.EffectiveUserId(), LocalCaller.UserOf(accepted));
        // The row is the client's: the accepted socket's own endpoint twice is no connection.
        Assert.Null(TcpSocketTable.FindOwner((IPEndPoint)accepted.LocalEndPoint!, (IPEndPoint)accepted.LocalEndPoint!));
    }

    [Fact]
    public async Task A_client_that_already_closed_its_socket_has_no_known_user()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!).WaitAsync(TimeSpan.FromSeconds(15));
        using var accepted = await listener.AcceptAsync().WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(UnixFiles.EffectiveUserId(), LocalCaller.UserOf(accepted));

        // Closed: the kernel keeps an orphan (FIN_WAIT) socket, listed with uid 0 and inode 0. Not root.
        client.Dispose();

        Assert.Null(LocalCaller.UserOf(accepted));
    }

    [Fact]
    public async Task The_kernels_exact_lookup_and_the_socket_table_agree_on_every_connection()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        var sockets = new List<Socket>();
        try
        {
            // IPv4, IPv6, a dual-mode client to an IPv4 listener, an IPv4 client to a dual-stack listener; live and closed.
            var pairs = new List<(Socket Client, Socket Accepted)>();
            foreach (var (address, dualModeClient, dualStackListener) in new[] { ("127.0.0.1", false, false), ("::1", false, false), ("127.0.0.1", true, false), ("127.0.0.1", false, true) })
            {
                var ip = IPAddress.Parse(address);
                var listener = dualStackListener
                    ? new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp) { DualMode = true }
                    : new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                sockets.Add(listener);
                listener.Bind(new IPEndPoint(dualStackListener ? IPAddress.IPv6Any : ip, 0));
                listener.Listen(8);
                for (var i = 0; i < 3; i++)
                {
                    var client = dualModeClient ? new Socket(SocketType.Stream, ProtocolType.Tcp) : new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                    sockets.Add(client);
                    await client.ConnectAsync(new IPEndPoint(ip, ((IPEndPoint)listener.LocalEndPoint!).Port)).WaitAsync(TimeSpan.FromSeconds(15));
                    var accepted = await listener.AcceptAsync().WaitAsync(TimeSpan.FromSeconds(15));
                    sockets.Add(accepted);
                    pairs.Add((client, accepted));
                }
            }

            pairs[1].Client.Dispose();
            pairs[4].Client.Dispose();
            foreach (var (client, accepted) in pairs)
            {
                var (remote, local) = ((IPEndPoint)accepted.RemoteEndPoint!, (IPEndPoint)accepted.LocalEndPoint!);
                var fromTables = TcpSocketTable.FindOwnerInTables(remote, local);
                Assert.Equal(fromTables, TcpSocketTable.FindOwner(remote, local));
                Assert.Equal(client.SafeHandle.IsClosed ? null : UnixFiles.EffectiveUserId(), fromTables);
                if (!client.SafeHandle.IsClosed)
                {
                    // Answered by sock_diag itself, not by the tables behind it.
                    Assert.Equal(new InetDiagAnswer(InetDiagVerdict.Owned, UnixFiles.EffectiveUserId()), SocketDiagnostics.Query(remote, local));
                }
            }
        }
        finally
        {
            foreach (var socket in sockets)
            {
                socket.Dispose();
            }
        }
    }

    [Fact]
    public async Task A_connection_another_user_opened_is_that_users()
    {
        if (!OperatingSystem.IsLinux() || UnixFiles.EffectiveUserId() != 0)
        {
            return;
        }

        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        using var nobody = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("setpriv",
            ["--reuid", "65534", "--regid", "65534", "--clear-groups", "bash", "-c", $"exec 3<>/dev/tcp/127.0.0.1/{port}; read -t 60 <&3"])
        {
            RedirectStandardError = true,
        })!;
        try
        {
            using var accepted = await listener.AcceptAsync().WaitAsync(TimeSpan.FromSeconds(15));

            Assert.Equal(65534u, LocalCaller.UserOf(accepted));
            Assert.Equal(65534u, TcpSocketTable.FindOwnerInTables((IPEndPoint)accepted.RemoteEndPoint!, (IPEndPoint)accepted.LocalEndPoint!));
        }
        finally
        {
            nobody.Kill();
            await nobody.WaitForExitAsync();
        }
    }
}
