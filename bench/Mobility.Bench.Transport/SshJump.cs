using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Mobility.Bench.Transport;

/// <summary>
/// An <c>ssh -L</c> port forward through a jump host (<c>ssh -J</c>), the anchor of the relay benchmark: a real
/// sshd on loopback (throw-away host and client keys in a temporary folder; StrictModes and PAM off) serves as
/// both the jump host (127.0.0.1) and the destination (127.0.0.2; ssh refuses a jump host equal to the destination),
/// so a forwarded connection crosses two SSH sessions (the client's ProxyJump session, whose direct-tcpip channel
/// carries the second) before sshd connects to the target.
/// </summary>
internal sealed class SshJump : IDisposable
{
    private readonly string _folder;
    private readonly Process _sshd;
    private readonly Process _ssh;

    private SshJump(string folder, Process sshd, Process ssh, int port)
    {
        _folder = folder;
        _sshd = sshd;
        _ssh = ssh;
        LocalPort = port;
    }

    /// <summary>The local end of the forward (127.0.0.1).</summary>
    public int LocalPort { get; }

    /// <summary>Null when sshd or ssh is not installed.</summary>
    public static async Task<SshJump?> StartAsync(IPEndPoint target)
    {
        if (!File.Exists("/usr/sbin/sshd") || !File.Exists("/usr/bin/ssh") || !File.Exists("/usr/bin/ssh-keygen"))
        {
            return null;
        }

        var folder = Directory.CreateTempSubdirectory("relay-bench-ssh.").FullName;
        Directory.CreateDirectory("/run/sshd");
        foreach (var key in new[] { "host_key", "client_key" })
        {
            await RunAsync("/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", Path.Combine(folder, key));
        }

        File.Copy(Path.Combine(folder, "client_key.pub"), Path.Combine(folder, "authorized_keys"));
        var sshPort = FreePort();
        await File.WriteAllTextAsync(Path.Combine(folder, "sshd_config"), $"""
            ListenAddress 127.0.0.1
            ListenAddress 127.0.0.2
            Port {sshPort}
            HostKey {folder}/host_key
            AuthorizedKeysFile {folder}/authorized_keys
            PidFile {folder}/sshd.pid
            StrictModes no
            UsePAM no
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PubkeyAuthentication yes
            PermitRootLogin yes
            AllowTcpForwarding yes

            """);

        // One client configuration for both hops: ssh hands -F to the ProxyJump ssh it starts.
        await File.WriteAllTextAsync(Path.Combine(folder, "ssh_config"), $"""
            Host *
              IdentityFile {folder}/client_key
              StrictHostKeyChecking no
              UserKnownHostsFile /dev/null
              BatchMode yes
              LogLevel ERROR

            """);
        var sshd = Start("/usr/sbin/sshd", "-D", "-e", "-f", Path.Combine(folder, "sshd_config"));
        await WaitForPortAsync(sshPort);
        var localPort = FreePort();
        var user = Environment.UserName;
        var ssh = Start("/usr/bin/ssh", "-F", Path.Combine(folder, "ssh_config"), "-N", "-T", "-o", "ExitOnForwardFailure=yes",
            "-J", $"{user}@127.0.0.1:{sshPort}", "-L", $"127.0.0.1:{localPort}:{target.Address}:{target.Port}", "-p", sshPort.ToString(), $"{user}@127.0.0.2");
        await WaitForListenerAsync(localPort);
        return new SshJump(folder, sshd, ssh, localPort);
    }

    /// <summary>CPU-s so far of ssh (with the ProxyJump ssh it started) and of sshd with its session processes.</summary>
    public double CpuSeconds() => TreeCpuSeconds(_ssh.Id) + TreeCpuSeconds(_sshd.Id);

    public void Dispose()
    {
        foreach (var process in new[] { _ssh, _sshd })
        {
            try
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
            }

            process.Dispose();
        }

        Directory.Delete(_folder, recursive: true);
    }

    /// <summary>utime + stime of <paramref name="pid"/> and every descendant alive now.</summary>
    private static double TreeCpuSeconds(int pid)
    {
        double total = 0;
        var queue = new Queue<int>([pid]);
        while (queue.TryDequeue(out var next))
        {
            try
            {
                total += Measure.CpuSeconds(next);
                foreach (var task in Directory.GetDirectories($"/proc/{next}/task"))
                {
                    foreach (var child in File.ReadAllText(Path.Combine(task, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                    {
                        queue.Enqueue(int.Parse(child, System.Globalization.CultureInfo.InvariantCulture));
                    }
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Gone meanwhile.
            }
        }

        return total;
    }

    private static Process Start(string file, params string[] arguments)
    {
        var info = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardError = true };
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        var process = Process.Start(info)!;
        process.ErrorDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        return process;
    }

    private static async Task RunAsync(string file, params string[] arguments)
    {
        using var process = Start(file, arguments);
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} exited with {process.ExitCode}");
        }
    }

    private static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>Waits until something listens on <paramref name="port"/> without connecting (a connection to the forward would reach the target).</summary>
    private static async Task WaitForListenerAsync(int port)
    {
        for (var i = 0; i < 300; i++)
        {
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                probe.Bind(new IPEndPoint(IPAddress.Loopback, port));
                await Task.Delay(100);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
            {
                return;
            }
        }

        throw new TimeoutException($"ssh does not listen on 127.0.0.1:{port}");
    }

    private static async Task WaitForPortAsync(int port)
    {
        for (var i = 0; i < 300; i++)
        {
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await probe.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }

        throw new TimeoutException($"nothing listens on 127.0.0.1:{port}");
    }
}
