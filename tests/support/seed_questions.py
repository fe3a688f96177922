"""Questions about the seed coverage, phrased differently from the articles, with the
paragraph(s) that answer each; and questions the coverage does not answer."""

TRIP = "000_94a4140cf05cdf3f"  # Trump Calls Off Pompeo's North Korea Trip
HANOI = "003_0c19cdefe2f9ba84"  # After Trump-Kim Summit Failure, Pompeo Says ... Will Resume

ON_TOPIC: list[tuple[str, set[str]]] = [
    ("why was the trip cancelled", {f"{TRIP}#2", f"{TRIP}#3"}),
    ("What reason did the president give for calling off the secretary of state's visit?",
     {f"{TRIP}#2", f"{TRIP}#3"}),
    ("Which country did Trump say had stopped helping because of the trade dispute?",
     {f"{TRIP}#4"}),
    ("When did the two leaders first meet in Singapore?", {f"{TRIP}#5"}),
    ("Was the joint statement from the summit specific about disarmament?", {f"{TRIP}#5"}),
    ("What did the White House say Pyongyang promised after the June meeting?", {f"{TRIP}#5"}),
    ("What did the national security adviser claim about Pyongyang's progress?",
     {f"{TRIP}#6", f"{TRIP}#7"}),
    ("On which TV programme did Bolton speak?", {f"{TRIP}#7"}),
    ("Did Trump previously trust the North Korean leader?", {f"{TRIP}#8"}),
    ("When might the secretary of state still travel to Pyongyang?", {f"{TRIP}#9"}),
    ("What message did the president send to Kim at the end?", {f"{TRIP}#10"}),
    ("Who helped with the reporting on the cancelled visit?", {f"{TRIP}#11"}),
    ("What did the president tweet about the Korean Peninsula?", {f"{TRIP}#3"}),
    ("Did Trump close the door on more negotiations?", {f"{TRIP}#9", f"{TRIP}#1"}),
    ("Will negotiations with North Korea restart after the summit collapsed?",
     {f"{HANOI}#1", f"{HANOI}#2"}),
    ("When does Pompeo's team plan to resume its work?", {f"{HANOI}#2"}),
    ("Is there any date set for new meetings with the North Koreans?", {f"{HANOI}#2"}),
    ("Why was no agreement signed in Hanoi?", {f"{HANOI}#3"}),
    ("What happened to the lunch and the signing event?", {f"{HANOI}#3"}),
    ("Where did Pompeo go after leaving Vietnam?", {f"{HANOI}#4"}),
    ("Which officials was Pompeo meeting in Manila?", {f"{HANOI}#4"}),
    ("How did Seoul describe Trump's reaction to the failed summit?", {f"{HANOI}#5"}),
    ("Who did Trump phone while leaving Vietnam?", {f"{HANOI}#6"}),
    ("What did the South Korean president urge Trump to do?", {f"{HANOI}#7"}),
    ("Are Moon and Trump planning to meet again?", {f"{HANOI}#7"}),
    ("Why did Trump walk out of the talks with Kim?", {f"{HANOI}#8"}),
    ("Is Kim prepared to give up his nuclear weapons?", {f"{HANOI}#9"}),
]

OFF_TOPIC: list[str] = [
    "What is the capital of France?",
    "How do I bake sourdough bread?",
    "Who won the 2018 World Cup?",
    "What is the boiling point of water at sea level?",
    "How many moons does Jupiter have?",
    "Who wrote Pride and Prejudice?",
    "How do I reset my iPhone password?",
    "When do the next Olympic Games start?",
    "What is the best way to learn to play the guitar?",
    "Which vitamins are in spinach?",
]

# Questions the ranking gets wrong today (the right paragraph is in the top 3, not first).
# "Will negotiations with North Korea restart…" left this list with best-sentence re-scoring,
# "On which TV programme did Bolton speak?" with late interaction in the ranking.
# They stay in the set so the hit rate is honest; issue 4's ranking work targets them.
HARD: set[str] = {
    "When might the secretary of state still travel to Pyongyang?",
    "Did Trump close the door on more negotiations?",
    "Is there any date set for new meetings with the North Koreans?",
    "What did the South Korean president urge Trump to do?",
    "Is Kim prepared to give up his nuclear weapons?",
}
