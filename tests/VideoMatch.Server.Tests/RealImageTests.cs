using System.Numerics;
using Google.Protobuf;
using SkiaSharp;
using VideoMatch.Contracts.V1;
using VideoMatch.Tests;

namespace VideoMatch.Server.Tests;

public sealed class RealImageTests(ServerFactory server) : IClassFixture<ServerFactory>
{
    [SharedDataFact("images/DSC_0410.jpg")]
    public Task MatchPair_CropsOfRealPhoto_RecoverCropShift() => RecoverCropShiftAsync("images/DSC_0410.jpg");

    [SharedDataFact("images/capitol_a.jpg")]
    public Task MatchPair_CropsOfLandmarkPhoto_RecoverCropShift() => RecoverCropShiftAsync("images/capitol_a.jpg");

    private async Task RecoverCropShiftAsync(string relativePath)
    {
        using var photo = SKBitmap.Decode(SharedData.Find(relativePath));
        var request = new MatchPairRequest
        {
            Image0 = PhotoFrames.Crop(photo, 120, 60, 640, 480),
            Image1 = PhotoFrames.Crop(photo, 127, 55, 640, 480),
        };

        var response = await server.Client.MatchPairAsync(request);

        // The window moved by (+7, −5), so the content moves by (−7, +5). Real photos have sky and flat walls:
        // most, not all, matches must agree (measured: about 85% within 1.5 px on both photos).
        MatchAssertions.RecoversMotion(response.Matches, new Vector2(-7, 5), tolerance: 1.5f, share: 0.8, minimum: 100);
    }
}
