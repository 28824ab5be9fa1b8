using System.Numerics;
using VideoMatch.Contracts.V1;

namespace VideoMatch.Tests;

/// <summary>What a correct answer looks like.</summary>
internal static class MatchAssertions
{
    /// <summary>Asserts that most matches move by <paramref name="expected"/> within <paramref name="tolerance"/> pixels.</summary>
    public static void RecoversMotion(Matches matches, Vector2 expected, float tolerance = 1f, double share = 0.9, int minimum = 200)
    {
        Assert.True(matches.Count >= minimum, $"only {matches.Count} matches");
        Assert.Equal((int)matches.Count * 2, matches.Keypoints0.Count);
        Assert.Equal((int)matches.Count * 2, matches.Keypoints1.Count);
        Assert.Equal((int)matches.Count, matches.Scores.Count);
        var good = 0;
        var dx = new float[matches.Count];
        var dy = new float[matches.Count];
        for (var i = 0; i < matches.Count; i++)
        {
            dx[i] = matches.Keypoints1[2 * i] - matches.Keypoints0[2 * i];
            dy[i] = matches.Keypoints1[2 * i + 1] - matches.Keypoints0[2 * i + 1];
            good += Vector2.Distance(new Vector2(dx[i], dy[i]), expected) < tolerance ? 1 : 0;
        }

        Array.Sort(dx);
        Array.Sort(dy);
        var median = new Vector2(dx[dx.Length / 2], dy[dy.Length / 2]);
        Assert.True(Vector2.Distance(median, expected) < tolerance, $"median motion {median}, expected {expected}");
        Assert.True(good >= share * matches.Count, $"{good}/{matches.Count} matches within {tolerance} px of {expected}");
        for (var i = 1; i < matches.Count; i++)
        {
            Assert.True(matches.Scores[i - 1] >= matches.Scores[i], "matches are sorted by score, highest first");
        }
    }
}
