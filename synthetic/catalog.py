"""Static catalogues the synthetic chain draws from: places, menu, ingredients, suppliers, names.

Kept apart from the generator so that the numbers a model is expected to rediscover live in one
readable place. Prices are in US dollars and scaled by a country price level, so menus look like
local menus (rupees in India, reais in Brazil) without a currency table.
"""

from __future__ import annotations

# (IANA timezone, ISO country): cycled through by restaurant index. Covers northern and southern
# DST, a half-hour offset without DST (Kolkata) and a zone that dropped DST in 2019 (Sao Paulo).
LOCATIONS: list[tuple[str, str, str]] = [
    ("America/New_York", "US", "Manhattan"),
    ("America/Los_Angeles", "US", "Santa Monica"),
    ("Europe/London", "GB", "Shoreditch"),
    ("Europe/Berlin", "DE", "Kreuzberg"),
    ("Europe/Paris", "FR", "Le Marais"),
    ("Australia/Sydney", "AU", "Surry Hills"),
    ("Asia/Kolkata", "IN", "Bandra"),
    ("America/Sao_Paulo", "BR", "Pinheiros"),
]

SOUTHERN = {"AU", "BR"}

# country -> (sales tax rate added on top of the subtotal, price level vs USD, phone prefix, tld)
COUNTRY: dict[str, tuple[float, float, str, str]] = {
    "US": (0.08, 1.0, "+1", "com"),
    "GB": (0.20, 0.9, "+44", "co.uk"),
    "DE": (0.19, 1.0, "+49", "de"),
    "FR": (0.10, 1.05, "+33", "fr"),
    "AU": (0.10, 1.5, "+61", "com.au"),
    "IN": (0.05, 25.0, "+91", "in"),
    "BR": (0.10, 5.0, "+55", "com.br"),
}

CATEGORIES = ("starters", "mains", "sides", "desserts", "drinks")

# ingredient -> (unit, unit cost USD, supplier key, perishable, shelf life days)
INGREDIENTS: dict[str, tuple[str, float, str, bool, int | None]] = {
    "Beef": ("kg", 12.0, "meat", True, 5),
    "Chicken": ("kg", 7.0, "meat", True, 4),
    "Pork": ("kg", 8.0, "meat", True, 5),
    "Lamb": ("kg", 14.0, "meat", True, 5),
    "Salmon": ("kg", 22.0, "seafood", True, 3),
    "Shrimp": ("kg", 18.0, "seafood", True, 3),
    "White fish": ("kg", 15.0, "seafood", True, 3),
    "Potatoes": ("kg", 1.2, "produce", True, 21),
    "Tomatoes": ("kg", 2.5, "produce", True, 7),
    "Lettuce": ("kg", 3.0, "produce", True, 5),
    "Onions": ("kg", 1.0, "produce", True, 30),
    "Lemons": ("each", 0.3, "produce", True, 20),
    "Mixed vegetables": ("kg", 3.5, "produce", True, 6),
    "Mushrooms": ("kg", 6.0, "produce", True, 5),
    "Berries": ("kg", 9.0, "produce", True, 4),
    "Cheese": ("kg", 11.0, "dairy", True, 30),
    "Milk": ("l", 1.1, "dairy", True, 8),
    "Cream": ("l", 4.0, "dairy", True, 10),
    "Butter": ("kg", 9.0, "dairy", True, 45),
    "Eggs": ("each", 0.25, "dairy", True, 21),
    "Paneer": ("kg", 8.0, "dairy", True, 7),
    "Flour": ("kg", 0.9, "dry", False, None),
    "Rice": ("kg", 1.5, "dry", False, None),
    "Pasta": ("kg", 2.0, "dry", False, None),
    "Lentils": ("kg", 2.0, "dry", False, None),
    "Sugar": ("kg", 1.0, "dry", False, None),
    "Cooking oil": ("l", 2.5, "dry", False, None),
    "Chocolate": ("kg", 10.0, "dry", False, None),
    "Coffee beans": ("kg", 18.0, "dry", False, None),
    "Spices": ("kg", 15.0, "dry", False, None),
    "Burger buns": ("each", 0.35, "dry", True, 4),
    "Bread": ("each", 0.5, "dry", True, 3),
    "Beer": ("l", 3.0, "beverages", False, None),
    "Wine": ("l", 9.0, "beverages", False, None),
    "Soda": ("each", 0.6, "beverages", False, None),
    "Juice": ("l", 2.2, "beverages", True, 10),
    "Tea": ("each", 0.1, "beverages", False, None),
}

# supplier key -> (name, promised lead time in days)
SUPPLIERS: list[tuple[str, str, float]] = [
    ("produce", "Green Valley Produce", 1.0),
    ("meat", "Prime Cut Meats", 2.0),
    ("seafood", "Harbour Seafood", 2.0),
    ("dairy", "Meadow Dairy", 1.0),
    ("dry", "Staples Wholesale", 4.0),
    ("beverages", "City Beverage Distributors", 3.0),
]

# name, category, price USD, station type, recipe {ingredient: quantity per unit sold}
MENU: list[tuple[str, str, float, str, dict[str, float]]] = [
    ("Tomato Soup", "starters", 6.5, "stove", {"Tomatoes": 0.25, "Cream": 0.05, "Onions": 0.05, "Bread": 1}),
    ("Garlic Bread", "starters", 5.0, "grill", {"Bread": 1, "Butter": 0.03}),
    ("Chicken Wings", "starters", 9.5, "fry", {"Chicken": 0.3, "Cooking oil": 0.05, "Spices": 0.005}),
    ("Fried Shrimp", "starters", 11.0, "fry", {"Shrimp": 0.15, "Flour": 0.05, "Cooking oil": 0.05}),
    ("Caesar Salad", "starters", 9.0, "cold", {"Lettuce": 0.2, "Cheese": 0.03, "Eggs": 1}),
    ("Bruschetta", "starters", 7.0, "cold", {"Bread": 1, "Tomatoes": 0.1}),
    ("Mushroom Soup", "starters", 7.0, "stove", {"Mushrooms": 0.2, "Cream": 0.05, "Onions": 0.03}),
    ("Nachos", "starters", 8.5, "fry", {"Cheese": 0.1, "Tomatoes": 0.08, "Flour": 0.1, "Cooking oil": 0.03}),
    ("Samosa", "starters", 5.5, "fry", {"Potatoes": 0.15, "Flour": 0.06, "Spices": 0.005, "Cooking oil": 0.04}),
    ("Paneer Tikka", "starters", 9.5, "tandoor", {"Paneer": 0.18, "Spices": 0.008}),
    ("Classic Burger", "mains", 14.0, "grill", {"Beef": 0.2, "Burger buns": 1, "Lettuce": 0.03, "Tomatoes": 0.05, "Cheese": 0.03}),
    ("Chicken Burger", "mains", 13.0, "grill", {"Chicken": 0.2, "Burger buns": 1, "Lettuce": 0.03}),
    ("Ribeye Steak", "mains", 29.0, "grill", {"Beef": 0.35, "Butter": 0.02, "Potatoes": 0.2}),
    ("Grilled Salmon", "mains", 24.0, "grill", {"Salmon": 0.22, "Lemons": 1, "Mixed vegetables": 0.15}),
    ("Fish and Chips", "mains", 17.0, "fry", {"White fish": 0.25, "Potatoes": 0.3, "Flour": 0.08, "Cooking oil": 0.1}),
    ("Roast Chicken", "mains", 18.0, "grill", {"Chicken": 0.4, "Potatoes": 0.2, "Mixed vegetables": 0.1}),
    ("Spaghetti Bolognese", "mains", 15.0, "stove", {"Pasta": 0.15, "Beef": 0.12, "Tomatoes": 0.15, "Onions": 0.03}),
    ("Mushroom Risotto", "mains", 16.0, "stove", {"Rice": 0.12, "Mushrooms": 0.15, "Butter": 0.02, "Cheese": 0.03}),
    ("Pork Ribs", "mains", 22.0, "grill", {"Pork": 0.45, "Spices": 0.01}),
    ("Lamb Curry", "mains", 19.0, "stove", {"Lamb": 0.25, "Rice": 0.12, "Spices": 0.01, "Onions": 0.05}),
    ("Butter Chicken", "mains", 17.0, "tandoor", {"Chicken": 0.25, "Cream": 0.05, "Butter": 0.02, "Rice": 0.12, "Spices": 0.01}),
    ("Dal Makhani", "mains", 12.0, "stove", {"Lentils": 0.15, "Butter": 0.02, "Cream": 0.03, "Spices": 0.008}),
    ("Veggie Pasta", "mains", 14.0, "stove", {"Pasta": 0.15, "Mixed vegetables": 0.2, "Cheese": 0.02}),
    ("Shrimp Tacos", "mains", 16.0, "grill", {"Shrimp": 0.15, "Flour": 0.08, "Lettuce": 0.03, "Lemons": 1}),
    ("Margherita Pizza", "mains", 13.0, "grill", {"Flour": 0.25, "Cheese": 0.12, "Tomatoes": 0.1}),
    ("Chicken Caesar Wrap", "mains", 12.0, "cold", {"Chicken": 0.15, "Flour": 0.08, "Lettuce": 0.05}),
    ("French Fries", "sides", 4.5, "fry", {"Potatoes": 0.2, "Cooking oil": 0.05}),
    ("Onion Rings", "sides", 5.0, "fry", {"Onions": 0.15, "Flour": 0.05, "Cooking oil": 0.05}),
    ("Side Salad", "sides", 4.5, "cold", {"Lettuce": 0.1, "Tomatoes": 0.05}),
    ("Steamed Rice", "sides", 3.5, "stove", {"Rice": 0.1}),
    ("Mashed Potatoes", "sides", 4.5, "stove", {"Potatoes": 0.2, "Butter": 0.02, "Milk": 0.05}),
    ("Garlic Naan", "sides", 3.5, "tandoor", {"Flour": 0.1, "Butter": 0.01}),
    ("Grilled Vegetables", "sides", 5.5, "grill", {"Mixed vegetables": 0.2}),
    ("Coleslaw", "sides", 3.5, "cold", {"Mixed vegetables": 0.1, "Cream": 0.02}),
    ("Chocolate Cake", "desserts", 7.5, "cold", {"Chocolate": 0.05, "Flour": 0.05, "Eggs": 1, "Sugar": 0.04, "Butter": 0.03}),
    ("Cheesecake", "desserts", 8.0, "cold", {"Cheese": 0.1, "Sugar": 0.04, "Cream": 0.03, "Eggs": 1}),
    ("Ice Cream", "desserts", 5.5, "cold", {"Milk": 0.15, "Cream": 0.05, "Sugar": 0.03}),
    ("Berry Crumble", "desserts", 7.0, "cold", {"Berries": 0.12, "Flour": 0.05, "Butter": 0.03, "Sugar": 0.03}),
    ("Brownie", "desserts", 6.5, "cold", {"Chocolate": 0.06, "Flour": 0.04, "Sugar": 0.04, "Eggs": 1, "Butter": 0.03}),
    ("Creme Brulee", "desserts", 8.0, "cold", {"Cream": 0.12, "Eggs": 2, "Sugar": 0.03}),
    ("Gulab Jamun", "desserts", 5.0, "stove", {"Milk": 0.1, "Sugar": 0.05, "Flour": 0.03}),
    ("Lemon Tart", "desserts", 7.0, "cold", {"Lemons": 1, "Flour": 0.05, "Butter": 0.03, "Sugar": 0.04, "Eggs": 1}),
    ("Draft Beer", "drinks", 6.5, "bar", {"Beer": 0.5}),
    ("Craft IPA", "drinks", 8.0, "bar", {"Beer": 0.4}),
    ("House Red Wine", "drinks", 9.0, "bar", {"Wine": 0.175}),
    ("House White Wine", "drinks", 9.0, "bar", {"Wine": 0.175}),
    ("Cola", "drinks", 3.5, "bar", {"Soda": 1}),
    ("Lemonade", "drinks", 4.0, "bar", {"Lemons": 2, "Sugar": 0.03}),
    ("Orange Juice", "drinks", 4.5, "bar", {"Juice": 0.25}),
    ("Espresso", "drinks", 3.0, "bar", {"Coffee beans": 0.018}),
    ("Cappuccino", "drinks", 4.5, "bar", {"Coffee beans": 0.018, "Milk": 0.15}),
    ("Iced Tea", "drinks", 3.5, "bar", {"Tea": 1, "Sugar": 0.02, "Lemons": 1}),
    ("Mango Lassi", "drinks", 4.5, "bar", {"Milk": 0.2, "Sugar": 0.03, "Juice": 0.1}),
    ("Sparkling Water", "drinks", 3.0, "bar", {"Soda": 1}),
    ("Milkshake", "drinks", 6.0, "bar", {"Milk": 0.25, "Cream": 0.05, "Sugar": 0.04}),
]

# station type -> (queue slope: relative slow-down per ticket ahead, base minutes low, high)
STATIONS: dict[str, tuple[float, float, float]] = {
    "grill": (0.06, 9.0, 16.0),
    "stove": (0.05, 7.0, 13.0),
    "fry": (0.04, 5.0, 9.0),
    "tandoor": (0.08, 6.0, 11.0),
    "cold": (0.025, 2.0, 6.0),
    "bar": (0.015, 1.0, 3.0),
}

FIRST_NAMES = [
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Lukas", "Mia", "Leon", "Hannah", "Louis",
    "Chloe", "Hugo", "Lea", "Jack", "Charlotte", "Noah", "Olivia", "Aarav", "Ananya", "Vihaan", "Diya",
    "Arjun", "Saanvi", "Miguel", "Helena", "Arthur", "Alice", "Davi", "Laura", "Lucas", "Manuela",
]
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Wilson", "Taylor",
    "Clark", "Lewis", "Walker", "Hall", "Young", "King", "Wright", "Evans", "Thomas", "Roberts",
    "Muller", "Schmidt", "Schneider", "Fischer", "Weber", "Martin", "Bernard", "Dubois", "Moreau",
    "Laurent", "Nguyen", "Kelly", "Murphy", "Sharma", "Patel", "Singh", "Gupta", "Iyer", "Silva",
    "Santos", "Oliveira", "Souza", "Costa", "Pereira",
]
