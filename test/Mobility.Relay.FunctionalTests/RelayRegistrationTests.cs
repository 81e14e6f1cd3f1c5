namespace Mobility.Relay.FunctionalTests;

/// <summary>Who may register at the real relay executable, and what a dial to nobody gets.</summary>
public sealed class RelayRegistrationTests
{
    [Fact]
    public async Task A_host_that_proves_its_key_registers_and_forged_proofs_are_refused()
    {
        await using var relay = await RelayProcess.StartAsync();
        using var victim = HostKey.Generate();
        using var attacker = HostKey.Generate();

        // The attacker's own key under the victim's GUID.
        await using (var wire = await RelayWire.ConnectAsync(relay.Tcp))
        {
            var status = await wire.RegisterAsync(nonce => RelayProof.Create(attacker, nonce, relay.Tcp) with { Guid = victim.Guid });
            Assert.Equal(RelayStatus.BadProof, status);
            Assert.True(await wire.ClosedByRelayAsync());
        }

        // A good signature over another nonce (a replayed proof).
        await using (var wire = await RelayWire.ConnectAsync(relay.Tcp))
        {
            Assert.Equal(RelayStatus.BadProof, await wire.RegisterAsync(_ => RelayProof.Create(victim, new byte[RelayMessage.NonceSize], relay.Tcp)));
        }

        // A good signature for another relay's endpoint (what a relay forwarding our challenge would get).
        await using (var wire = await RelayWire.ConnectAsync(relay.Tcp))
        {
            var elsewhere = new IPEndPoint(IPAddress.Parse("192.0.2.1"), relay.Tcp.Port);
            Assert.Equal(RelayStatus.BadProof, await wire.RegisterAsync(nonce => RelayProof.Create(victim, nonce, elsewhere)));
        }

        Assert.Equal(0, await relay.MetricAsync("relay_hosts"));
        await using (var wire = await RelayWire.ConnectAsync(relay.Tcp))
        {
            Assert.Equal(RelayStatus.Ok, await wire.RegisterAsync(nonce => RelayProof.Create(victim, nonce, relay.Tcp)));
            Assert.Equal(1, await relay.MetricAsync("relay_hosts"));
            await wire.SendAsync(new RelayPing(42));
            Assert.Equal(new RelayPong(42), await wire.ReceiveAsync(RelayMessage.HeaderSize + 8));
        }

        await TestTimeout.Eventually(async () => await relay.MetricAsync("relay_hosts") == 0, "the closed registration is forgotten");
    }

    [Fact]
    public async Task Only_guids_on_the_allow_list_register()
    {
        using var admitted = HostKey.Generate();
        using var stranger = HostKey.Generate();
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(file, $"# the hosts of this deployment\n{admitted.Guid}\n");
            await using var relay = await RelayProcess.StartAsync(extra: ["--allow", file]);
            Assert.Equal("allow-list:1", relay.Ready.Require("admission"));

            var refused = await Assert.ThrowsAsync<RelayException>(() => RelayFlowListener.RegisterAsync(stranger, relay.Tcp).WithTimeout());
            Assert.Equal(RelayStatus.NotAdmitted, refused.Status);

            await using var registration = await RelayFlowListener.RegisterAsync(admitted, relay.Tcp).WithTimeout();
            Assert.Equal(1, await relay.MetricAsync("relay_hosts"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task A_malformed_allow_list_stops_the_relay_with_one_line_naming_the_line()
    {
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(file, "0123456789abcdef0123456789abcdef01234567\nnot-a-guid\n");
            await using var process = TestProcess.Start(Executables.Locate("mobility-relay", "Mobility.Relay.Host"), ["serve", "--listen", "127.0.0.1:0", "--allow", file]);
            Assert.Equal(64, await process.WaitForExitAsync());
            Assert.Contains("line 2 is not a GUID", process.StandardError, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task A_dial_to_a_guid_that_is_not_registered_is_refused()
    {
        await using var relay = await RelayProcess.StartAsync();
        using var nobody = HostKey.Generate();

        var refused = await Assert.ThrowsAsync<RelayException>(() => RelayFlows.DialAsync(relay.Tcp, nobody.Guid).AsTask().WithTimeout());

        Assert.Equal(RelayStatus.UnknownHost, refused.Status);
        Assert.Equal(1, await relay.MetricAsync("relay_dials_total"));
    }

    [Fact]
    public async Task The_per_guid_dial_limit_counts_each_guid_on_its_own_even_when_their_first_16_bytes_agree()
    {
        var environment = new Dictionary<string, string>
        {
            ["RELAY_Relay__Limits__GuidDialBurst"] = "1",
            ["RELAY_Relay__Limits__GuidDialsPerSecond"] = "0.001",
        };
        await using var relay = await RelayProcess.StartAsync(environment: environment);
        var first = HostGuid.Parse("20010db8000000000000000000000000000000a1");
        var second = HostGuid.Parse("20010db8000000000000000000000000000000a2");

        async Task<RelayStatus?> DialAsync(HostGuid target)
            => (await Assert.ThrowsAsync<RelayException>(() => RelayFlows.DialAsync(relay.Tcp, target).AsTask().WithTimeout())).Status;

        Assert.Equal(RelayStatus.UnknownHost, await DialAsync(first));
        Assert.Equal(RelayStatus.RateLimited, await DialAsync(first));
        Assert.Equal(RelayStatus.UnknownHost, await DialAsync(second));
    }

    [Fact]
    public async Task An_accept_with_a_splice_id_the_relay_did_not_issue_is_refused()
    {
        await using var relay = await RelayProcess.StartAsync();
        using var host = HostKey.Generate();
        await using var registration = await RelayFlowListener.RegisterAsync(host, relay.Tcp).WithTimeout();

        await using var wire = await RelayWire.ConnectAsync(relay.Tcp);
        await wire.SendAsync(new RelayAccept(host.Guid, new byte[RelayMessage.SpliceIdSize]));

        Assert.Equal(new RelayResult(RelayStatus.UnknownSplice), await wire.ReceiveAsync(RelayMessage.HeaderSize + 1));
        Assert.True(await wire.ClosedByRelayAsync());
    }
}
