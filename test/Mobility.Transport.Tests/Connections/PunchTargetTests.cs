using System.Net;
using Mobility.Transport.Flows;
using Mobility.Transport.Relay;

namespace Mobility.Transport.Tests.Connections;

/// <summary>
/// Where a server's punch SYNs may go (<see cref="MobileListenerOptions.PunchTargetLocator"/>): a PUNCH frame makes the
/// server connect to reflexive candidates the client named itself, so with a locator only those at an address the
/// client's record publishes are kept.
/// </summary>
public sealed class PunchTargetTests
{
    private static readonly HostGuid Client = HostKey.Generate().Guid;

    private static PunchResponder Responder(IPeerLocator? locator) => new(TcpFlowFactory.Instance, _ => { }, locator);

    [Fact]
    public async Task Only_candidates_at_an_address_the_clients_record_publishes_are_punched()
    {
        var locator = new TestLocator();
        locator.Set(Client, IPEndPoint.Parse("192.168.2.2:7391"), IPEndPoint.Parse("198.18.102.2:7391"),
            new RelayEndPoint(IPAddress.Parse("198.18.2.2"), 7395, Client));
        IPEndPoint[] candidates =
        [
            IPEndPoint.Parse("198.18.102.2:7391"),
            IPEndPoint.Parse("[::ffff:198.18.102.2]:40001"),
            IPEndPoint.Parse("192.0.2.66:22"),
            IPEndPoint.Parse("198.18.2.2:7395"),
        ];

        var allowed = await Responder(locator).AllowedAsync(Client, candidates, CancellationToken.None).WithTimeout();

        Assert.Equal([candidates[0], candidates[1]], allowed);
    }

    [Fact]
    public async Task A_client_without_a_record_is_punched_nowhere()
    {
        var allowed = await Responder(new TestLocator()).AllowedAsync(Client, [IPEndPoint.Parse("198.18.102.2:7391")], CancellationToken.None).WithTimeout();

        Assert.Empty(allowed);
    }

    [Fact]
    public async Task Without_a_locator_every_candidate_is_punched()
    {
        IPEndPoint[] candidates = [IPEndPoint.Parse("198.18.102.2:7391"), IPEndPoint.Parse("192.0.2.66:22")];

        Assert.Equal(candidates, await Responder(null).AllowedAsync(Client, candidates, CancellationToken.None).WithTimeout());
    }
}
