using System.CommandLine;
using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using Mobility.Cli.Commands;
using Mobility.Daemon.Forwarding;

namespace Mobility.Cli.FunctionalTests;

/// <summary>`mob expose | exposed | unexpose | forward`, run in-process against real daemons.</summary>
public sealed partial class ForwardCommandTests
{
    [Fact]
    public async Task Mob_expose_and_forward_reach_a_plain_tcp_server_on_another_host()
    {
        var gns = new FakeGns();
        using var echo = new TcpListener(IPAddress.Loopback, 0);
        echo.Start();
        var echoPort = ((IPEndPoint)echo.LocalEndpoint).Port;
        var bAddress = DaemonInstance.NewAddress();
        await using var b = await DaemonInstance.StartAsync(gns.CreateClient(), bAddress, extraArgs: ["--transport", $"{bAddress}:0", "--socks", "off"]);
        await using var a = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        await TestTimeout.Eventually(() => gns.Get(b.Guid) is not null, "B registered");
        var socks = a.Socks.ToString();
        Assert.Contains("socks=-", b.ReadyLine, StringComparison.Ordinal);

        var exposed = await Mob(default, "expose", echoPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "--socket", b.SocketPath);
        var listed = await Mob(default, "exposed", "--socket", b.SocketPath);
        Assert.Equal((0, $"{echoPort}\n"), (exposed.Exit, exposed.Out));
        Assert.Equal((0, $"{echoPort}\n"), (listed.Exit, listed.Out));

        using var cts = new CancellationTokenSource(TestTimeout.Default);
        using var forwardOut = new StringWriter();
        var forward = Invoke(cts.Token, forwardOut, "forward", "0", $"{b.Guid}:{echoPort}", "--socks", socks);
        await TestTimeout.Eventually(() => forwardOut.ToString().Contains(" to ", StringComparison.Ordinal), "mob forward listens");
        var local = IPEndPoint.Parse(forwardOut.ToString().Split(' ')[1]);

        var serving = Task.Run(async () =>
        {
            using var session = await echo.AcceptSocketAsync();
            var buffer = new byte[8192];
            int read;
            while ((read = await session.ReceiveAsync(buffer)) > 0)
            {
                await session.SendAsync(buffer.AsMemory(0, read));
            }

            session.Shutdown(SocketShutdown.Send);
        });
        using (var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await client.ConnectAsync(local).WithTimeout();
            var data = RandomNumberGenerator.GetBytes(100_000);
            await client.SendAsync(data).WithTimeout();
            // mob status lists the live connection with its path (docs/nat.md, "Direct paths"): straight to B here.
            await TestTimeout.Eventually(async () => (await Mob(default, "status", "--socket", a.SocketPath)).Out.Contains($"  {b.Guid}: direct\n", StringComparison.Ordinal),
                "mob status shows the connection's path");
            client.Shutdown(SocketShutdown.Send);
            using var all = new MemoryStream();
            var buffer = new byte[8192];
            int read;
            while ((read = await client.ReceiveAsync(buffer).WithTimeout()) > 0)
            {
                all.Write(buffer, 0, read);
            }

            Assert.Equal(SHA256.HashData(data), SHA256.HashData(all.ToArray()));
        }

        await serving.WithTimeout();
        await cts.CancelAsync();
        Assert.Equal(ExitCodes.Interrupted, await forward.WithTimeout());

        var removed = await Mob(default, "unexpose", echoPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "--socket", b.SocketPath);
        Assert.Equal((0, ""), (removed.Exit, removed.Out));
        var refused = await Assert.ThrowsAsync<CliException>(() => ForwardCommands.SocksConnectAsync(IPEndPoint.Parse(socks), b.Guid.ToString(), (ushort)echoPort, CancellationToken.None)).WithTimeout();
        Assert.Equal(ExitCodes.Rejected, refused.ExitCode);
    }

    private static async Task<(int Exit, string Out, string Err)> Mob(CancellationToken cancellationToken, params string[] args)
    {
        using var stdout = new StringWriter();
        var exit = await Invoke(cancellationToken, stdout, args).WithTimeout();
        return (exit, stdout.ToString(), "");
    }

    private static Task<int> Invoke(CancellationToken cancellationToken, StringWriter stdout, params string[] args)
    {
        var root = Mobility.Cli.Program.BuildRoot();
        foreach (var command in ForwardCommands.Create())
        {
            if (root.Subcommands.All(c => c.Name != command.Name))
            {
                root.Subcommands.Add(command);
            }
        }

        return root.Parse(args).InvokeAsync(new InvocationConfiguration { Output = stdout, Error = new StringWriter() }, cancellationToken);
    }
}
