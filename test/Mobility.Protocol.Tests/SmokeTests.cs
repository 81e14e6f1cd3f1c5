using Mobility.Protocol.Identity;
namespace Mobility.Protocol.Tests;
public class SmokeTests
{
    [Fact]
    public void Guid_roundtrips() { using var k = HostKey.Generate(); Assert.Equal(k.Guid, HostGuid.Parse(k.Guid.ToString())); }
}
