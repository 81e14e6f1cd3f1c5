namespace Mobility.Daemon.FunctionalTests;

/// <summary>
/// The kernel upcall: `keyctl request2 user mobility:&lt;guid&gt; "" @s` makes the kernel run
/// /sbin/request-key, which runs deploy/request-key/mobility-request-key, which asks the daemon over
/// its Unix socket. Installs its own /etc/request-key.d/mobility.conf line for the test's socket.
/// </summary>
[Collection(nameof(UpcallTests))]
public sealed class UpcallTests
{
    private const string ConfPath = "/etc/request-key.d/mobility.conf";

    /// <summary>Requests the key in a new session keyring and prints its payload.</summary>
    private static Task<(int ExitCode, string Stdout, string Stderr)> RequestKeyAsync(string description)
        => Tool.RunAsync("keyctl", ["session", "-", "sh", "-c", "k=$(keyctl request2 user \"$0\" '' @s) && keyctl print \"$k\"", description]);

    [KeyutilsFact]
    public async Task Request_key_is_answered_with_the_guids_addresses_and_unknown_guids_are_negated()
    {
        var gns = new FakeGns();
        var second = DaemonInstance.NewAddress();
        await using var peer = await DaemonInstance.StartAsync(gns.CreateClient(), extraArgs: ["--address", second.ToString()]);
        await using var daemon = await DaemonInstance.StartAsync(gns.CreateClient());
        await TestTimeout.Eventually(() => gns.Get(peer.Guid) is not null, "the peer registered");
        var handler = Path.Combine(AppContext.BaseDirectory, "deploy", "mobility-request-key");
        var previous = File.Exists(ConfPath) ? await File.ReadAllTextAsync(ConfPath).WithTimeout() : null;
        Directory.CreateDirectory(Path.GetDirectoryName(ConfPath)!);
        await File.WriteAllTextAsync(ConfPath, $"create user mobility:* * /bin/sh {handler} --socket {daemon.SocketPath} --negative-ttl 2 %k %d %S\n").WithTimeout();
        try
        {
            // In a fresh session keyring, so that the requester possesses the key it asked for.
            var found = await RequestKeyAsync($"mobility:{peer.Guid}");
            Assert.True(found.ExitCode == 0, $"the upcall failed: {found.Stdout} {found.Stderr}");
            var payload = found;

            var expected = new[] { peer.Address.ToString(), second.ToString() }.Order(StringComparer.Ordinal);
            Assert.Equal(expected, payload.Stdout.Trim().Split(' ').Order(StringComparer.Ordinal));

            // The API gives the same list.
            var record = await daemon.Api.GetIpAsync(peer.Guid.ToString()).WithTimeout();
            Assert.Equal(expected, record!.Locators.Select(l => l.Address.ToString()).Distinct().Order(StringComparer.Ordinal));

            using var unknown = HostKey.Generate();
            var missing = await RequestKeyAsync($"mobility:{unknown.Guid}");
            Assert.NotEqual(0, missing.ExitCode);
            Assert.Contains("not available", missing.Stderr, StringComparison.OrdinalIgnoreCase);
        }
        finally
        {
            if (previous is null)
            {
                File.Delete(ConfPath);
            }
            else
            {
                await File.WriteAllTextAsync(ConfPath, previous).WithTimeout();
            }
        }
    }
}
