using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Security.Cryptography;
using Mobility.EndToEnd.FunctionalTests.Infrastructure;

namespace Mobility.EndToEnd.FunctionalTests;

/// <summary>Runs only where OpenSSH (client and server) is installed; CI installs openssh-server.</summary>
public sealed class SshFactAttribute : FactAttribute
{
    public SshFactAttribute()
    {
        if (SshServer.Missing() is { } why)
        {
            Skip = why;
        }
    }
}

/// <summary>
/// An unmodified ssh reaches sshd through <c>mob connect</c> as its ProxyCommand (real gns, two real
/// mobilityd on different loopback addresses), and the session survives the server host moving to
/// another address while bytes stream through it.
/// </summary>
public sealed class SshProxyCommandTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(60);

    [SshFact]
    public async Task Ssh_through_mob_connect_survives_a_move_of_the_server_host_mid_session()
    {
        const int Size = 8 * 1024 * 1024;
        var net = $"127.93.{RandomNumberGenerator.GetInt32(1, 255)}";
        var (clientAddress, serverAddress, movedAddress) = ($"{net}.2", $"{net}.3", $"{net}.4");
        var root = Directory.CreateTempSubdirectory("ssh-proxy-").FullName;
        var mob = Executables.Locate("mob", "Mobility.Cli");
        try
        {
            await using var sshd = await SshServer.StartAsync(Step);
            await using var gns = await GnsProcess.StartAsync(["serve", "--data", Path.Combine(root, "gns"), "--udp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"]);
            var (gnsUdp, gnsGrpc) = (gns.Ready.Require("udp"), gns.Ready.Require("grpc"));

            var serverSocket = Path.Combine(root, "server", "d.sock");
            await using var server = StartDaemon(Path.Combine(root, "server"), serverAddress, gnsUdp, gnsGrpc, socks: "off");
            await using var client = StartDaemon(Path.Combine(root, "client"), clientAddress, gnsUdp, gnsGrpc, socks: "127.0.0.1:0");
            await server.WaitReadyAsync();
            await client.WaitReadyAsync();
            var serverGuid = server.Field("guid");
            var socks = client.Field("socks");
            var transportPort = server.Field("transport").Split(':')[^1];

            await RunMobAsync(mob, "expose", sshd.Port.ToString(CultureInfo.InvariantCulture), "--socket", serverSocket);

            var data = RandomNumberGenerator.GetBytes(Size);
            var expected = Convert.ToHexStringLower(SHA256.HashData(data));
            var proxy = $"{DotnetHost()} {mob}.dll connect --socks {socks} %h %p";
            using var ssh = StartSsh(sshd, proxy, serverGuid, "sha256sum");
            var stdout = ssh.StandardOutput.ReadToEndAsync();
            var stderr = ssh.StandardError.ReadToEndAsync();

            // The first half, the move, the second half: the move happens while the session carries data.
            var stdin = ssh.StandardInput.BaseStream;
            await stdin.WriteAsync(data.AsMemory(0, Size / 2)).AsTask().WaitAsync(Step);
            await stdin.FlushAsync().WaitAsync(Step);
            await RunMobAsync(mob, "addresses", "set", movedAddress, "--socket", serverSocket);
            var moved = await RunMobAsync(mob, "addresses", "--socket", serverSocket);
            Assert.Contains(movedAddress, moved, StringComparison.Ordinal);
            await stdin.WriteAsync(data.AsMemory(Size / 2)).AsTask().WaitAsync(Step);
            stdin.Close();

            await ssh.WaitForExitAsync().WaitAsync(Step);
            var (hash, errors) = (await stdout.WaitAsync(Step), await stderr.WaitAsync(Step));
            output.WriteLine($"ssh exit {ssh.ExitCode}; stdout: {hash.Trim()}; stderr: {errors.Trim()}");
            Assert.True(ssh.ExitCode == 0, $"ssh exited with {ssh.ExitCode}: {errors}\nclient daemon:\n{client.StandardError}\nserver daemon:\n{server.StandardError}\nsshd:\n{sshd.Log}");
            Assert.Equal(expected, hash.Split(' ')[0].Trim());

            // The server's transport listener followed it to the new address (same port) and no longer
            // listens on the old one, whose flows it dropped: the session went on over a resumed flow.
            Assert.True(await AcceptsAsync(movedAddress, transportPort), $"nothing listens on {movedAddress}:{transportPort}");
            Assert.False(await AcceptsAsync(serverAddress, transportPort), $"{serverAddress}:{transportPort} still listens");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static async Task<bool> AcceptsAsync(string address, string port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(IPEndPoint.Parse($"{address}:{port}")).WaitAsync(Step);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static MobilitydProcess StartDaemon(string stateDir, string address, string gnsUdp, string gnsGrpc, string socks)
    {
        Directory.CreateDirectory(stateDir);
        return MobilitydProcess.Start(
        [
            "--state-dir", stateDir, "--gns", gnsUdp, "--gns-grpc", gnsGrpc,
            "--address", address, "--allow-loopback", "true", "--control", $"{address}:0", "--transport", $"{address}:0",
            "--socks", socks, "--http", "off", "--grpc", "off", "--socket", Path.Combine(stateDir, "d.sock"), "--grpc-socket", "off",
        ]);
    }

    private async Task<string> RunMobAsync(string mob, params string[] args)
    {
        await using var process = TestProcess.Start(mob, args);
        var exit = await process.WaitForExitAsync(Step);
        output.WriteLine($"mob {string.Join(' ', args)} -> {exit}: {process.StandardOutput.Trim()} {process.StandardError.Trim()}");
        Assert.True(exit == 0, $"mob {string.Join(' ', args)} exited with {exit}: {process.StandardError}");
        return process.StandardOutput;
    }

    private static Process StartSsh(SshServer sshd, string proxyCommand, string host, string command)
    {
        var info = new ProcessStartInfo(SshServer.Ssh)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[]
        {
            "-F", "/dev/null", "-T", "-p", sshd.Port.ToString(CultureInfo.InvariantCulture), "-i", sshd.ClientKey, "-l", sshd.User,
            "-o", $"ProxyCommand={proxyCommand}", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR", host, command,
        })
        {
            info.ArgumentList.Add(a);
        }

        return Process.Start(info)!;
    }

    /// <summary>The dotnet host running the tests (ssh runs the ProxyCommand through a shell that may have another PATH).</summary>
    private static string DotnetHost()
        => Environment.ProcessPath is { } path && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path : "dotnet";
}
